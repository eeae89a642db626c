"""The analytics supervision sweep notices degraded services, remedies what it can, and says so
when they recover."""

from __future__ import annotations

import pytest

from tests.conftest import start_workers
from trading.analytics.supervision import stuck_messages, sweep
from trading.events.consumer import ensure_group
from trading.events.envelope import new_event
from trading.events.log import events_stream, publish
from trading.events.replay import read_window
from trading.store import redis_client

pytestmark = pytest.mark.django_db(transaction=True)

ISOLATED_DB = 8


@pytest.fixture
def isolated(settings, process_env, redis_server):
    url = f"redis://127.0.0.1:{redis_server.port}/{ISOLATED_DB}"
    settings.REDIS_URL = url
    redis_client().flushdb()
    return {**process_env, "REDIS_URL": url}


def announcements() -> list[tuple[str, str]]:
    types = ["service.degraded", "service.recovered"]
    return [(e.type, e.payload["service"]) for _, e in read_window(types=types, limit=100)]


def test_a_service_without_workers_is_degraded_then_recovered(isolated, settings):
    first = sweep()
    assert all(result["degraded"] for result in first.values())
    assert "not ready: workers" in first["ai"]["problems"][0]
    assert set(announcements()) == {
        ("service.degraded", "ai"), ("service.degraded", "exec-risk"),
        ("service.degraded", "analytics"),
    }  # fmt: skip
    alerts = read_window(types=["risk.alert"], limit=10)
    assert {e.payload["service"] for _, e in alerts} == {"ai", "exec-risk", "analytics"}

    sweep()  # still degraded: nothing new announced
    assert len(announcements()) == 3

    (worker,) = start_workers([("analytics@supervised", "analytics")], isolated)
    try:
        result = sweep()
        assert result["analytics"]["degraded"] is False
        assert announcements()[-1] == ("service.recovered", "analytics")
    finally:
        worker.stop()


def test_stuck_event_log_messages_are_reclaimed(isolated, settings):
    settings.SUPERVISION_STUCK_SECONDS = 0
    client = redis_client()
    ensure_group(client, "analytics")
    publish(new_event("risk.alert", {"reason": "test"}, service="exec-risk"))
    # A consumer that died holding the message: read, never acknowledged.
    client.xreadgroup("analytics", "dead-consumer", {events_stream(): ">"}, count=10)
    assert stuck_messages(client, "analytics", 0) == 1

    result = sweep()
    assert "1 event-log messages stuck in group analytics" in result["analytics"]["problems"]
    assert result["analytics"]["remedies"] == ["reclaim"]
