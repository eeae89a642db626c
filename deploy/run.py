"""``make run``: the whole platform on this machine, under supervisord, until Ctrl-C.

Environment: ``HOST`` and ``PORT`` (default 127.0.0.1:8000) for the web server, ``WS_PORT``
(default ``PORT`` + 1) for the dashboard's websocket; ``REDIS_URL``:
used as it is when a server answers there, otherwise a local server is started on that port with
its data in ``var/redis`` and a password kept in ``var/redis-password``; ``QT_VAR_DIR`` (default
``var/``) for the database, logs and sockets.

What it chose is written to ``var/run.env``, where ``manage.py``, Celery and the web servers find it
(``controlpanel/startup.py``). Everything under ``var/`` is for this user only (umask 077).
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from deploy.redis_server import (
    RedisUnavailable,
    find_redis_server,
    masked_url,
    port_in_use,
    redis_answers,
    server_command,
    url_host_port,
    url_password,
    url_with_password,
    wait_until_answering,
    write_password_config,
)

BASE_DIR = Path(__file__).resolve().parents[1]
SERVICES = ("ai", "exec-risk", "analytics")
# What a command run later in another shell needs to reach this platform (var/run.env).
RUN_ENV_NAMES = (
    "QT_VAR_DIR",
    "HOST",
    "PORT",
    "WS_PORT",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_SECRET_KEY",
    "REDIS_URL",
    "QT_REDIS_PREFIX",
    "DATABASE_URL",
)


def fail(message: str) -> None:
    print(f"quantum-trader: {message}", file=sys.stderr)
    sys.exit(2)


def write_private(path: Path, text: str) -> None:
    """Replaces ``path`` with ``text``, readable by this user only from the first byte."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    partial.chmod(0o600)
    partial.replace(path)


def read_or_create_secret(path: Path, length: int = 48) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(length)
    write_private(path, value + "\n")
    return value


def restrict_var_dir(var_dir: Path) -> None:
    """Takes group and other permissions off everything under ``var_dir``, for a var/ written by an
    earlier version (0644 database, logs and AOF): it holds the API tokens and the secrets."""
    try:
        for root, dirs, files in os.walk(var_dir):
            for name in [*dirs, *files]:
                path = Path(root, name)
                mode = path.lstat().st_mode
                if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
                    path.chmod(stat.S_IMODE(mode) & 0o700)
        var_dir.chmod(0o700)
    except OSError as exc:
        fail(f"cannot make {exc.filename} private to this user: {exc.strerror}")


def write_run_env(env: dict[str, str], var_dir: Path) -> None:
    lines = [
        "# Written by make run at every start; read by manage.py, Celery and the web servers",
        "# for the variables not set in their environment (an exported variable wins).",
    ]
    for name in RUN_ENV_NAMES:
        value = env.get(name)
        if value and "\n" not in value:
            lines.append(f"{name}={value}")
    write_private(var_dir / "run.env", "\n".join(lines) + "\n")


def prepare_environment() -> dict[str, str]:
    env = dict(os.environ)
    var_dir = Path(env.get("QT_VAR_DIR") or BASE_DIR / "var").resolve()
    for sub in ("run", "log", "redis", "static"):
        (var_dir / sub).mkdir(parents=True, exist_ok=True)
    restrict_var_dir(var_dir)
    host = env.get("HOST") or "127.0.0.1"
    port = env.get("PORT") or "8000"
    if not port.isdigit() or not 0 < int(port) < 65536:
        fail(f"PORT={port!r} is not valid: expected a port number")
    ws_port = env.get("WS_PORT") or str(int(port) + 1 if int(port) < 65535 else 8001)
    if not ws_port.isdigit() or not 0 < int(ws_port) < 65536 or ws_port == port:
        fail(f"WS_PORT={ws_port!r} is not valid: expected a port number other than PORT")
    env.update(
        QT_VAR_DIR=str(var_dir),
        QT_BASE_DIR=str(BASE_DIR),
        QT_PYTHON=sys.executable,
        HOST=host,
        PORT=port,
        WS_PORT=ws_port,
        QT_WORKER_CONCURRENCY=env.get("QT_WORKER_CONCURRENCY") or "2",
    )
    # The Telegram bot is optional: supervisord starts it only when it has a token.
    env["QT_START_TELEGRAM_BOT"] = "true" if env.get("QT_TELEGRAM_BOT_TOKEN") else "false"
    if not env.get("DJANGO_SECRET_KEY"):
        env["DJANGO_SECRET_KEY"] = read_or_create_secret(var_dir / "secret-key")
    if not env.get("DJANGO_ALLOWED_HOSTS"):
        hosts = ["localhost", "127.0.0.1", "[::1]"]
        env["DJANGO_ALLOWED_HOSTS"] = ",".join(hosts if host in hosts else [*hosts, host])
    configure_redis(env, var_dir)
    write_run_env(env, var_dir)
    return env


def configure_redis(env: dict[str, str], var_dir: Path) -> None:
    """A server that answers at ``REDIS_URL`` is used as it is; otherwise one is started here,
    wanting the URL's password or, with none in the URL, the one kept in var/redis-password."""
    url = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    candidates = [url]
    if not url_password(url):
        url = url_with_password(url, read_or_create_secret(var_dir / "redis-password"))
        # The server an earlier run started on this var/, still up.
        candidates.append(url)
    for candidate in candidates:
        if redis_answers(candidate):
            print(f"quantum-trader: using the Redis server at {masked_url(candidate)}")
            env.update(REDIS_URL=candidate, QT_START_REDIS="false", QT_REDIS_COMMAND="/bin/true")
            return
    host, port = url_host_port(url)
    if host not in ("127.0.0.1", "localhost"):
        fail(
            f"REDIS_URL={masked_url(url)} does not answer; "
            "a local server can only start on this host"
        )
    if port_in_use("127.0.0.1", port):
        fail(
            f"port {port} is taken by something that is not this platform's Redis "
            "(no answer without a password, nor with the one in var/redis-password): "
            "set REDIS_URL to another port"
        )
    try:
        binary = find_redis_server()
    except RedisUnavailable as exc:
        fail(str(exc))
    config = var_dir / "redis.conf"
    write_password_config(config, url_password(url) or "")
    command = server_command(binary, port, var_dir / "redis", config_file=config)
    env.update(REDIS_URL=url, QT_START_REDIS="true", QT_REDIS_COMMAND=shlex.join(command))
    print(f"quantum-trader: starting a local Redis server on port {port} (data in {var_dir}/redis)")


def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env)
    if result.returncode != 0:
        sys.exit(result.returncode)


def ensure_admin(env: dict[str, str]) -> str:
    """Creates the first operator account once; returns how to log in."""
    command = [
        sys.executable,
        "manage.py",
        "bootstrap_admin",
        "--password-file",
        str(Path(env["QT_VAR_DIR"]) / "admin-password"),
    ]
    if env.get("QT_ADMIN_PASSWORD"):
        command += ["--password", env["QT_ADMIN_PASSWORD"]]
    result = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        sys.exit(result.returncode)
    return result.stdout.strip()


def train_first_model(env: dict[str, str], supervisor: subprocess.Popen) -> None:
    """The ai service is ready only with a trained model: once Redis answers, train one on the
    bundled history unless the database holds one already (a few seconds)."""
    try:
        wait_until_answering(env["REDIS_URL"], 30)
    except RedisUnavailable as exc:
        print(f"quantum-trader: {exc}; the ai service will wait for a model", file=sys.stderr)
        return
    if supervisor.poll() is None:
        command = [sys.executable, "manage.py", "train_model", "--if-missing"]
        if subprocess.run(command, cwd=BASE_DIR, env=env).returncode != 0:
            print("quantum-trader: training failed; see above", file=sys.stderr)


def wait_ready(urls: list[str], timeout: float, supervisor: subprocess.Popen) -> list[str]:
    """Waits until every URL answers 200; returns those that did not."""
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending and time.monotonic() < deadline and supervisor.poll() is None:
        for url in list(pending):
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        pending.remove(url)
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.5)
    return pending


def main() -> None:
    # Every file this launcher and its processes create (database, logs, AOF, secrets) is private.
    os.umask(0o077)
    env = prepare_environment()
    manage(env, "migrate", "--noinput", "-v", "0")
    login = ensure_admin(env)
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", "deploy/supervisord.conf"],
        cwd=BASE_DIR,
        env=env,
    )

    def stop(signum: int, frame: object) -> None:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    train_first_model(env, supervisor)
    shown_host = "127.0.0.1" if env["HOST"] in ("0.0.0.0", "::") else env["HOST"]  # noqa: S104
    base_url = f"http://{shown_host}:{env['PORT']}"
    # The web process and every service ready, and the websocket server answering.
    urls = [f"{base_url}{path}" for path in ("/ready", *(f"/services/{s}/ready" for s in SERVICES))]
    urls.append(f"http://{shown_host}:{env['WS_PORT']}/health")
    pending = wait_ready(urls, float(env.get("QT_READY_TIMEOUT", "90")), supervisor)
    if supervisor.poll() is None:
        state = "ready" if not pending else "up, still waiting on " + ", ".join(pending)
        print(
            f"\nquantum-trader: {state}\n"
            f"  dashboard  {base_url}/  (its websocket on port {env['WS_PORT']})\n"
            f"  login      {login}\n"
            f"  health     {base_url}/services/<ai|exec-risk|analytics>/health\n"
            f"  logs       {env['QT_VAR_DIR']}/log/\n"
            "  Ctrl-C stops every process.\n",
            flush=True,
        )
    sys.exit(supervisor.wait())


if __name__ == "__main__":
    main()
