"""Session-wide real parts: one Redis server and one worker per service, shared by the tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.redis_server import LocalRedis
from tests import environment
from tests.support.processes import Process, celery_worker, wait_for

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
    """One worker per service on the shared Redis, as make run starts them."""
    specs = [("ai@tests", "ai"), ("exec_risk@tests", "exec_risk"), ("analytics@tests", "analytics")]
    workers = dict(
        zip(("ai", "exec-risk", "analytics"), start_workers(specs, process_env), strict=True)
    )
    yield workers
    for worker in workers.values():
        worker.stop()
