"""Counters recorded by several worker processes on several nodes add up on one metrics page."""

from __future__ import annotations

import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_workers
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ISOLATED_DB = 6
PINGS = 40
TASK = "trading.observability.ping_service"


def samples(client, service: str) -> dict[tuple[str, tuple], float]:
    text = client.get(f"/services/{service}/metrics").content.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counters_from_two_prefork_workers_on_two_nodes_add_up(
    client, settings, process_env, redis_server
):
    url = f"redis://127.0.0.1:{redis_server.port}/{ISOLATED_DB}"
    settings.REDIS_URL = url
    env = {**process_env, "REDIS_URL": url}
    # Two nodes, as two hosts would run them, each with a pool of two processes.
    workers = start_workers([("ai@host-a", "ai"), ("ai@host-b", "ai")], env, concurrency=2)
    try:
        rpc = Celery("metrics-test", broker=url, backend=url, set_as_current=False)
        rpc.conf.broker_transport_options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        rpc.conf.result_backend_transport_options = settings.CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS
        results = [rpc.send_task(TASK, args=[str(i)], queue="ai") for i in range(PINGS)]
        answers = [r.get(timeout=30) for r in results]
        assert sorted(a["payload"] for a in answers) == sorted(str(i) for i in range(PINGS))
        processes = {(a["node"], a["pid"]) for a in answers}
        assert len(processes) >= 2, f"all pings ran in one process: {processes}"

        key = ("ai_service_tasks_total", (("state", "success"), ("task", TASK)))
        wait_for(lambda: samples(client, "ai").get(key) == PINGS, 10, f"{PINGS} counted tasks")
        page = samples(client, "ai")
        assert page[("ai_service_task_duration_seconds_count", (("task", TASK),))] == PINGS
        assert page[("ai_service_workers", ())] == 2

        health = client.get("/services/ai/health").json()
        assert sum(w["tasks_done"] for w in health["workers"]) == PINGS
    finally:
        for worker in workers:
            worker.stop()
