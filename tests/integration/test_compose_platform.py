"""docker-compose.yml runs the whole platform: each app service's own command and environment,
started here as a local process in the order compose starts them, serves every ready endpoint and
publishes the feed's bars. No Docker engine is needed: host names point at local parts (a private
PostgreSQL server when this machine has PostgreSQL's programs, SQLite otherwise)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest

from deploy.redis_server import free_port
from tests.support.compose import LocalPlatform, app_services, init_service, resolved_compose
from tests.support.postgres import LocalPostgres, postgres_programs
from tests.support.processes import ROOT, Process, http_status, wait_for
from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.replay import replay_start_step

pytestmark = pytest.mark.skipif(
    not shutil.which("docker-compose"), reason="docker-compose resolves the file's variables"
)

SERVICES = ("ai", "exec-risk", "analytics")
COMPOSE_DB = 11
POSTGRES_PORT = 5432  # the postgres image's
REPLAY_START = replay_start_step(20, "5m")  # the feed's first step: QT_REPLAY_START_DAYS


@pytest.fixture
def platform(tmp_path, redis_server):
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SECRET_KEY": "compose-test-secret-key-that-is-long-enough-for-the-check",
        "QT_ADMIN_PASSWORD": "compose admin password 1",
    }
    every_service = resolved_compose(env)["services"]
    services = app_services(every_service)
    ports = {}
    for name, service in services.items():
        for mapping in service.get("ports", []):
            local = free_port()
            ports[(name, int(mapping["target"]))] = local
            ports[(name, int(mapping["published"]))] = local
    redis_url = urlunsplit(urlsplit(redis_server.url)._replace(path=f"/{COMPOSE_DB}"))
    urls = {"redis": redis_url}
    database = None
    programs = postgres_programs()
    if programs:
        # As the postgres image makes them: the database and its owner from its environment.
        made = every_service["postgres"]["environment"]
        database = LocalPostgres(
            programs, made["POSTGRES_DB"], made["POSTGRES_USER"], made["POSTGRES_PASSWORD"]
        ).start()
        ports[("postgres", POSTGRES_PORT)] = database.port
    else:
        urls["postgres"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    local = LocalPlatform(services, ports, urls, tmp_path / "containers")
    started: list[Process] = []
    flush_db(redis_url)
    yield local, started, tmp_path / "log"
    for process in reversed(started):
        process.stop()
    flush_db(redis_url)
    if database:
        database.stop()


def flush_db(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def market_bars(env: dict[str, str]) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "manage.py", "events", "--type", "market.bar", "--limit", "3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_compose_services_prepare_then_serve_every_service_and_publish_bars(platform):
    local, started, log_dir = platform
    init = init_service(local.services)
    preparation = local.process(init, log_dir)
    started.append(preparation.start())
    wait_for(lambda: not preparation.alive(), 180, f"the {init} service to finish", step=0.5)
    assert preparation.popen.returncode == 0, preparation.log_tail()
    log = preparation.log_path.read_text()
    assert "log in as admin with password compose admin password 1" in log
    assert "out-of-sample accuracy" in log  # the first model, trained

    others = [name for name in local.services if name != init]
    assert {"web", "websocket", "feed", "beat"} <= set(others)
    for name in others:
        started.append(local.process(name, log_dir).start())

    def healthy(name: str) -> bool:
        for process in started[1:]:
            assert process.alive(), f"{process.name} exited:\n{process.log_tail()}"
        return http_status(local.health_url(name)) == 200

    # web's /ready, the websocket's /ready, each service's /services/<s>/ready (the feed's and
    # the ai worker's also need a model and fresh bars).
    for name in others:
        wait_for(lambda n=name: healthy(n), 180, f"{name}'s healthcheck to pass", step=0.5)
    checked = {urlsplit(local.health_url(n)).path for n in others}
    assert checked >= {"/ready", *(f"/services/{s}/ready" for s in SERVICES)}

    # The feed replays the klines that ship with the code, from right after its warm-up history.
    bars = wait_for(lambda: market_bars(local.environment("feed")), 60, "a market.bar event")
    first = bars[0]["payload"]
    assert first == load_bundled_bars(first["symbol"])[REPLAY_START].to_payload()
