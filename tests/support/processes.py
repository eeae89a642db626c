"""Real platform processes for the tests: Celery workers and the ASGI web server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], object], timeout: float, what: str, step: float = 0.1):
    """Polls until ``condition()`` is truthy and returns its value; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


class Process:
    """A child process with its output in a log file, stopped for sure at the end."""

    def __init__(self, name: str, command: list[str], env: Mapping[str, str], log_dir: Path):
        self.name = name
        self.command = command
        self.env = dict(env)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL to the main process only, as a crash would do."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 20) -> None:
        """Stops the process and everything it started (its whole session)."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.popen.poll() is None:
            self.popen.wait(5)


def celery_worker(
    node: str, queues: str, env: Mapping[str, str], log_dir: Path, concurrency: int = 1
) -> Process:
    command = [
        sys.executable, "-m", "celery", "-A", "controlpanel", "worker",
        "-Q", queues, "-n", node, "--concurrency", str(concurrency),
        "--loglevel", "INFO", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    return Process(node.replace("@", "-"), command, env, log_dir)


def web_server(port: int, env: Mapping[str, str], log_dir: Path) -> Process:
    """The web process as make run starts it: gunicorn's WSGI workers, plain HTTP."""
    command = [
        sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
        "--bind", f"127.0.0.1:{port}", "controlpanel.wsgi:application",
    ]  # fmt: skip
    return Process(f"web-{port}", command, env, log_dir)


def socket_server(port: int, env: Mapping[str, str], log_dir: Path) -> Process:
    """The websocket process as make run starts it: uvicorn serving the ASGI application."""
    command = [
        sys.executable, "-m", "uvicorn", "controlpanel.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    return Process(f"websocket-{port}", command, env, log_dir)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None
