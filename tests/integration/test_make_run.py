"""`make run`'s launcher: the whole platform under supervisord, restarting what crashes."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest

from deploy.redis_server import free_port
from tests.support.launcher import processes_of, start_launcher, stop_launcher
from tests.support.processes import http_status, wait_for

SERVICES = ("ai", "exec-risk", "analytics")
PLATFORM_DB = 7


def health(base: str, service: str) -> dict:
    with urllib.request.urlopen(f"{base}/services/{service}/health", timeout=3) as response:
        return json.loads(response.read())


@pytest.fixture
def platform(tmp_path, redis_server):
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "QT_VAR_DIR": str(tmp_path / "var"),
        "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/{PLATFORM_DB}",
        "QT_WORKER_CONCURRENCY": "1",
        "QT_HEARTBEAT_INTERVAL": "0.5",
        "QT_HEARTBEAT_EXPIRY": "3",
    }
    env.pop("DJANGO_SECRET_KEY")
    launcher = start_launcher(env, tmp_path / "run.log")
    base = f"http://127.0.0.1:{port}"
    yield launcher, base, tmp_path
    stop_launcher(launcher, tmp_path / "var")


def test_make_run_serves_every_service_and_restarts_a_killed_worker(platform):
    launcher, base, tmp_path = platform
    var_dir = tmp_path / "var"

    def all_ready() -> bool:
        assert launcher.poll() is None, (tmp_path / "run.log").read_text()
        return all(http_status(f"{base}/services/{s}/ready") == 200 for s in SERVICES)

    wait_for(all_ready, 60, "every service to be ready under make run", step=0.5)
    assert http_status(f"{base}/ready") == 200
    with urllib.request.urlopen(f"{base}/", timeout=3) as response:
        assert response.url == f"{base}/accounts/login/?next=/"
    wait_for(lambda: f"dashboard  {base}/" in (tmp_path / "run.log").read_text(), 10, "banner")
    password = (var_dir / "admin-password").read_text().strip()
    assert f"log in as admin with password {password}" in (tmp_path / "run.log").read_text()

    (worker,) = health(base, "exec-risk")["workers"]
    os.kill(worker["pid"], signal.SIGKILL)
    killed_at = time.monotonic()

    def restarted() -> bool:
        if http_status(f"{base}/services/exec-risk/ready") != 200:
            return False
        return any(w["pid"] != worker["pid"] for w in health(base, "exec-risk")["workers"])

    wait_for(restarted, 30, "exec-risk to be ready again with a new worker", step=0.25)
    assert time.monotonic() - killed_at < 30

    started = processes_of(var_dir)
    assert len(started) >= 6  # supervisord, web, three workers, beat (and pool processes)
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(60) == 0
    wait_for(lambda: not processes_of(var_dir), 10, "every platform process to stop")
