"""A service is ready exactly while a live worker consumes its queue."""

from __future__ import annotations

import time

import pytest

from tests.conftest import start_workers
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# A Redis database of its own, so the session's shared workers do not answer for this service.
ISOLATED_DB = 5


@pytest.fixture
def isolated(settings, process_env, redis_server):
    url = f"redis://127.0.0.1:{redis_server.port}/{ISOLATED_DB}"
    settings.REDIS_URL = url
    return {**process_env, "REDIS_URL": url}


def test_ready_flips_with_the_worker_and_back_after_sigkill(client, settings, isolated):
    assert client.get("/services/analytics/ready").status_code == 503

    (worker,) = start_workers([("analytics@liveness", "analytics")], isolated, concurrency=2)
    try:
        wait_for(
            lambda: client.get("/services/analytics/ready").status_code == 200,
            10,
            "analytics to become ready",
        )
        worker.kill()
        killed_at = time.monotonic()
        wait_for(
            lambda: client.get("/services/analytics/ready").status_code == 503,
            settings.HEARTBEAT_EXPIRY_SECONDS + 2,
            "analytics to become not ready after SIGKILL",
        )
        took = time.monotonic() - killed_at
        assert took <= settings.HEARTBEAT_EXPIRY_SECONDS + 1
        body = client.get("/services/analytics/ready").json()
        assert body["failing"] == ["workers"]
    finally:
        worker.stop()


def test_a_worker_that_stops_cleanly_withdraws_at_once(client, isolated):
    (worker,) = start_workers([("analytics@graceful", "analytics")], isolated)
    assert client.get("/services/analytics/ready").status_code == 200
    worker.stop()
    # The shutdown handler removed the record: no waiting for the expiry.
    assert client.get("/services/analytics/ready").status_code == 503
