"""docker-compose.yml, deploy/supervisord.conf and deploy/run.py read side by side, and compose's
services turned into local processes (no Docker engine needed)."""

from __future__ import annotations

import ast
import configparser
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from tests.support.processes import ROOT, Process

COMPOSE_FILE = ROOT / "docker-compose.yml"


def compose_services() -> dict[str, dict]:
    """The services as written (anchors merged, variables not interpolated)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def resolved_compose(env: Mapping[str, str]) -> dict:
    """The file as docker-compose resolves it with ``env``: variables interpolated."""
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT, env=dict(env), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def app_services(services: Mapping[str, dict]) -> dict[str, dict]:
    """The services a plain `docker compose up` runs from the application image (built from the
    Dockerfile); those under a profile (the optional Telegram bot) start only when asked for."""
    return {
        name: service
        for name, service in services.items()
        if "build" in service and not service.get("profiles")
    }


def init_service(services: Mapping[str, dict]) -> str:
    """The one-shot service the others wait for."""
    (name,) = {
        dependency
        for service in services.values()
        if isinstance(service.get("depends_on"), dict)
        for dependency, rule in service["depends_on"].items()
        if rule.get("condition") == "service_completed_successfully"
    }
    return name


def image_environment(dockerfile: Path = ROOT / "Dockerfile") -> dict[str, str]:
    """The variables the image's ``ENV`` instructions set."""
    env: dict[str, str] = {}
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction.upper() == "ENV":
            for word in shlex.split(rest):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def supervisord_programs(path: Path = ROOT / "deploy" / "supervisord.conf") -> dict[str, list]:
    """Each ``[program:NAME]``'s command, split into arguments."""
    config = configparser.RawConfigParser()
    config.read(path)
    return {
        section.removeprefix("program:"): shlex.split(config[section]["command"])
        for section in config.sections()
        if section.startswith("program:")
    }


_BIND_OPTIONS = ("--host", "--port", "--bind", "-b")


def normalised_command(argv: list[str]) -> list[str]:
    """A command as supervisord or compose writes it, with what legitimately differs between the
    two made equal: the interpreter's path, variables (``%(ENV_X)s``, ``${X:-default}``), and the
    address a server binds."""
    words = []
    for index, word in enumerate(argv):
        word = re.sub(r"%\(ENV_(\w+)\)s", r"${\1}", word).replace("%%", "%")
        word = re.sub(r"\$\{(\w+):?-[^}]*\}", r"${\1}", word)
        if index == 0 and (word == "${QT_PYTHON}" or re.fullmatch(r"(.*/)?python3?(\.\d+)?", word)):
            word = "python"
        if index and argv[index - 1] in _BIND_OPTIONS:
            word = "<address>"
        words.append(word)
    return words


def make_run_preparation(path: Path = ROOT / "deploy" / "run.py") -> list[tuple[str, set[str]]]:
    """The management commands deploy/run.py runs, in the order ``main()`` reaches them (through
    the module's own functions), each with its ``--`` options: ``manage(env, "migrate", ...)``
    calls and ``[..., "manage.py", "bootstrap_admin", ...]`` lists."""
    tree = ast.parse(path.read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}

    def command(words: list[ast.expr]) -> tuple[str, set[str]] | None:
        # The helper's own [..., "manage.py", *args] names no command.
        if not words or not isinstance(words[0], ast.Constant):
            return None
        texts = [word.value for word in words if isinstance(word, ast.Constant)]
        return texts[0], {text for text in texts[1:] if text.startswith("--")}

    def reached(function: ast.FunctionDef, seen: frozenset[str]):
        nodes = [n for n in ast.walk(function) if isinstance(n, ast.Call | ast.List)]
        for node in sorted(nodes, key=lambda n: (n.lineno, n.col_offset)):
            found = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "manage":
                    found = command(node.args[1:])
                elif node.func.id in functions and node.func.id not in seen:
                    yield from reached(functions[node.func.id], seen | {node.func.id})
            elif isinstance(node, ast.List):
                texts = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
                if "manage.py" in texts:
                    found = command(node.elts[texts.index("manage.py") + 1 :])
            if found:
                yield found

    return list(reached(functions["main"], frozenset({"main"})))


LOOPBACK = ("127.0.0.1", "localhost", "0.0.0.0")  # noqa: S104


class LocalPlatform:
    """Compose's app services as local processes from the repository: the service host names
    point at local parts (``redis`` and ``postgres`` at the URLs given, ``web`` and the other
    servers at 127.0.0.1 on the ports given) and each service gets a var directory of its own,
    as each container has its own file system.

    ``ports`` maps (service, port in its container) to the port on 127.0.0.1; ``urls`` maps a
    service host name to the URL that replaces any URL naming it (a database of another kind)."""

    def __init__(
        self,
        services: Mapping[str, dict],
        ports: Mapping[tuple[str, int], int],
        urls: Mapping[str, str],
        work_dir: Path,
    ) -> None:
        self.services = services
        self.ports = dict(ports)
        self.urls = dict(urls)
        self.work_dir = work_dir
        self.image_env = image_environment()

    def local_port(self, service: str, host: str, port: int) -> int:
        """Where ``host:port``, as the container of ``service`` names it, is reached here."""
        return self.ports[(service if host in LOOPBACK else host, port)]

    def rewrite_url(self, service: str, value: str) -> str:
        parts = urlsplit(value)
        if not parts.scheme or not parts.hostname:
            return value
        if parts.hostname in self.urls:
            return self.urls[parts.hostname]
        port = self.local_port(service, parts.hostname, parts.port)
        credentials, at, _ = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{credentials}{at}127.0.0.1:{port}"))

    def environment(self, service: str) -> dict[str, str]:
        """The image's variables, then the service's, with container addresses made local."""
        declared = {**self.image_env, **(self.services[service].get("environment") or {})}
        var_dir = self.work_dir / service
        (var_dir / "static").mkdir(parents=True, exist_ok=True)  # as the image has it
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(var_dir),
            "LANG": "C.UTF-8",
        }
        for name, value in declared.items():
            value = "" if value is None else str(value)
            if name == "HOST":
                value = "127.0.0.1"
            elif name == "PORT" and (service, int(value)) in self.ports:  # a server's own port
                value = str(self.local_port(service, "127.0.0.1", int(value)))
            elif name == "WS_PORT":
                # Where browsers reach the websocket server (the port compose publishes).
                value = str(self.local_port("websocket", "127.0.0.1", int(value)))
            elif "://" in value:
                value = self.rewrite_url(service, value)
            env[name] = value
        env["QT_VAR_DIR"] = str(var_dir)
        return env

    def command(self, service: str) -> list[str]:
        argv = list(self.services[service]["command"])
        assert argv[0] == "python", f"{service}: {argv}"
        argv[0] = sys.executable
        for index in range(1, len(argv)):
            if argv[index - 1] == "--host":
                argv[index] = "127.0.0.1"
            elif argv[index - 1] == "--port":
                argv[index] = str(self.local_port(service, "127.0.0.1", int(argv[index])))
        return argv

    def process(self, service: str, log_dir: Path) -> Process:
        return Process(service, self.command(service), self.environment(service), log_dir)

    def health_url(self, service: str) -> str:
        """The URL the service's healthcheck asks, as reached from here."""
        (url,) = [w for w in self.services[service]["healthcheck"]["test"] if w.startswith("http")]
        return self.rewrite_url(service, url)
