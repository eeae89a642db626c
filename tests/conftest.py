"""Session-wide real parts: one Redis server and one worker per service, shared by the tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.redis_server import LocalRedis
from tests import environment
from tests.support.processes import (
    Process,
    celery_worker,
    http_status,
    socket_server,
    wait_for,
    web_server,
)

LOG_DIR = environment.VAR_DIR / "log"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    server = LocalRedis(environment.REDIS_PORT, environment.VAR_DIR / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server):
    from trading.store import redis_client as shared_client

    return shared_client()


def database_url_for_processes() -> str:
    """The test database, as a URL the worker and web processes can open."""
    from django.db import connection

    settings = connection.settings_dict
    assert settings["ENGINE"] == "django.db.backends.sqlite3", "tests run on SQLite"
    return "sqlite:///" + str(Path(settings["NAME"]).resolve())


@pytest.fixture(scope="session")
def process_env(redis_server, django_db_setup) -> dict[str, str]:
    """The environment of the platform processes the tests start."""
    return {**os.environ, "DATABASE_URL": database_url_for_processes()}


def start_workers(
    specs: list[tuple[str, str]], env: dict[str, str], concurrency: int = 1
) -> list[Process]:
    """Starts workers, given as (node, queues), and waits until each heartbeat is recorded."""
    import redis

    from trading.observability.heartbeat import WorkerBeat
    from trading.store import rkey

    workers = [
        celery_worker(node, queues, env, LOG_DIR, concurrency).start() for node, queues in specs
    ]
    client = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)

    def beating(worker: Process, node: str) -> bool:
        assert worker.alive(), f"{node} exited:\n{worker.log_tail()}"
        record = client.hgetall(rkey("worker", node))
        return bool(record) and WorkerBeat.from_mapping(record).pid == worker.pid

    try:
        for worker, (node, _) in zip(workers, specs, strict=True):
            wait_for(lambda w=worker, n=node: beating(w, n), 60, f"the heartbeat of {node}")
    except BaseException:
        for worker in workers:
            worker.stop()
        raise
    finally:
        client.close()
    return workers


@pytest.fixture(scope="session")
def service_workers(process_env) -> Iterator[dict[str, Process]]:
    """One worker per service on the shared Redis, each with a pool of two processes, as make
    run starts them (a system-check run holds one analytics process while the other drains)."""
    specs = [("ai@tests", "ai"), ("exec_risk@tests", "exec_risk"), ("analytics@tests", "analytics")]
    started = start_workers(specs, process_env, concurrency=2)
    workers = dict(zip(("ai", "exec-risk", "analytics"), started, strict=True))
    yield workers
    for worker in workers.values():
        worker.stop()


SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def bars_at(index: int):
    from trading.marketdata.klines import load_bundled_bars

    return [load_bundled_bars(symbol)[index] for symbol in SYMBOLS]


@pytest.fixture
def market(redis_server):
    """The first recorded bar of each symbol, just received: fresh quotes and bar history."""
    from trading.marketdata.prices import record_bars
    from trading.store import redis_client, rkey

    client = redis_client()
    client.delete(rkey("prices"), *(rkey("bars", s) for s in SYMBOLS))
    bars = bars_at(0)
    record_bars(bars)
    return {bar.symbol: bar for bar in bars}


@pytest.fixture(scope="session")
def model_artifact():
    """A model trained once per session on the last three days of the bundled history."""
    from trading.ai.training import train_walk_forward
    from trading.marketdata.klines import load_bundled_bars

    return train_walk_forward({s: load_bundled_bars(s)[-3 * 288 :] for s in SYMBOLS})


@pytest.fixture
def trained_model(model_artifact, redis_server):
    """The session's model, stored as the newest version (the database is emptied between
    transactional tests)."""
    from trading.ai.services import store_model

    return store_model(model_artifact, "test")


@pytest.fixture
def ai_ready(trained_model, market):
    """What the ai service needs to be ready: a model and fresh bars."""
    return trained_model


@pytest.fixture
def olivia(django_user_model):
    """An operator: may halt, resume, send signals and edit limits (staff, for the admin)."""
    from django.contrib.auth.models import Group

    from trading.roles import OPERATOR, ensure_roles

    ensure_roles()
    user = django_user_model.objects.create_user(
        "olivia", password="operator password 1", is_staff=True
    )
    user.groups.add(Group.objects.get(name=OPERATOR))
    return user


@pytest.fixture
def victor(django_user_model):
    """A viewer: sees everything, changes nothing."""
    from django.contrib.auth.models import Group

    from trading.roles import VIEWER, ensure_roles

    ensure_roles()
    user = django_user_model.objects.create_user("victor", password="viewer password 1")
    user.groups.add(Group.objects.get(name=VIEWER))
    return user


@pytest.fixture(scope="session")
def web_url(process_env) -> Iterator[str]:
    """The platform's web processes as make run serves them: gunicorn for HTTP on the returned
    URL, uvicorn for the dashboard's websocket on ``WS_PORT``."""
    servers = [
        web_server(environment.WEB_PORT, process_env, LOG_DIR).start(),
        socket_server(environment.WS_PORT, process_env, LOG_DIR).start(),
    ]
    url = f"http://127.0.0.1:{environment.WEB_PORT}"
    try:
        ports = (environment.WEB_PORT, environment.WS_PORT)
        for server, port in zip(servers, ports, strict=True):
            probe = f"http://127.0.0.1:{port}/ready"

            def answering(p: str = probe, s: Process = server) -> bool:
                return http_status(p) == 200 or not s.alive()

            wait_for(answering, 30, server.name)
            assert server.alive(), server.log_tail()
        yield url
    finally:
        for server in servers:
            server.stop()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Browser tests run last: Playwright's sync API leaves an event loop running in the main
    thread for the rest of the session, which async_to_sync (the dashboard broadcaster) and
    asyncio.run (the websocket tests) cannot share."""
    browser = [item for item in items if "/tests/e2e/" in str(item.fspath)]
    others = [item for item in items if "/tests/e2e/" not in str(item.fspath)]
    items[:] = others + browser
