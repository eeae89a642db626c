"""`make run`'s launcher (``python -m deploy.run``) as the tests start it: in a var directory of
their own, stopped with Ctrl-C as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.processes import ROOT, wait_for


def processes_of(var_dir: Path) -> set[int]:
    """Every live process started for this platform (they all carry its QT_VAR_DIR)."""
    marker = f"QT_VAR_DIR={var_dir}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def start_launcher(env: Mapping[str, str], log_path: Path) -> subprocess.Popen:
    """Starts the launcher with ``env`` (which names its QT_VAR_DIR); its output goes to
    ``log_path``, readable by this user only (it prints the admin password)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "deploy.run"], cwd=ROOT, env=dict(env), stdout=log, stderr=log
        )


def wait_until_ready(launcher: subprocess.Popen, log_path: Path, timeout: float = 150) -> None:
    """Waits for the launcher's banner saying every service is ready."""

    def ready() -> bool:
        assert launcher.poll() is None, log_path.read_text(errors="replace")
        return "quantum-trader: ready" in log_path.read_text(errors="replace")

    wait_for(ready, timeout, "make run to report every service ready", step=0.5)


def stop_launcher(launcher: subprocess.Popen, var_dir: Path) -> None:
    """Ctrl-C, then waits until none of the platform's processes is left."""
    if launcher.poll() is None:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(60)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()
    wait_for(lambda: not processes_of(var_dir), 20, "every platform process to stop")
