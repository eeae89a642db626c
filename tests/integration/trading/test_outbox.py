"""The transactional outbox with the real parts: events written with their change, relayed in
order, once in the log; a signal accepted while Redis is down is filled once it is back."""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
import redis

from tests.support.processes import wait_for
from tests.support.signals import saved_signal
from trading.events import outbox
from trading.events.envelope import new_event
from trading.events.replay import read_window
from trading.models import OutboxEvent, Signal
from trading.risk.services import get_account

pytestmark = pytest.mark.django_db(transaction=True)


def log_of(correlation_id: str) -> list[str]:
    return [event.event_id for _, event in read_window(limit=1000, correlation_id=correlation_id)]


class DeadRedis:
    """What the fast path sees when Redis went away between the commit and the publish."""

    def eval(self, *args, **kwargs):
        raise redis.ConnectionError("Connection refused")


@pytest.fixture
def redis_down_after_commit(monkeypatch):
    monkeypatch.setattr(outbox, "_fast_client", lambda url: DeadRedis())


def test_a_rolled_back_change_leaves_no_event_and_a_committed_one_is_logged_once(redis_client):
    from django.db import transaction

    event = new_event("risk.alert", {"reason": "TEST"}, service="exec-risk", correlation_id="c-1")
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.record([event])
        raise RuntimeError("the change fails")
    assert not OutboxEvent.objects.exists()

    kept = new_event("risk.alert", {"reason": "TEST"}, service="exec-risk", correlation_id="c-2")
    outbox.record([kept])
    assert log_of("c-2") == [kept.event_id]
    outbox.mark_published()  # what the process does shortly after by itself
    assert OutboxEvent.objects.get().published_at is not None


def test_a_row_published_after_commit_is_marked_in_the_processs_next_transaction(redis_client):
    first = new_event("risk.alert", {"n": 1}, service="exec-risk", correlation_id="c-4")
    second = new_event("risk.alert", {"n": 2}, service="exec-risk", correlation_id="c-5")
    (row,) = outbox.record([first])
    outbox.record([second])
    row.refresh_from_db()
    assert row.published_at is not None
    assert log_of("c-4") == [first.event_id]


def test_an_event_after_one_still_waiting_is_published_after_it(redis_client, monkeypatch):
    waiting = new_event("risk.alert", {"n": 1}, service="exec-risk", correlation_id="c-6")
    monkeypatch.setattr(outbox, "_fast_client", lambda url: DeadRedis())
    outbox.record([waiting])  # Redis "down": it waits in the outbox
    monkeypatch.undo()
    later = new_event("risk.alert", {"n": 2}, service="exec-risk", correlation_id="c-6")
    other = new_event("risk.alert", {"n": 3}, service="exec-risk", correlation_id="c-7")
    outbox.record([later, other])
    assert log_of("c-6") == [waiting.event_id, later.event_id]
    assert log_of("c-7") == [other.event_id]
    # Read back from the database or taken as recorded, each event is in the log as it was.
    logged = [event for _, event in read_window(limit=1000, correlation_id="c-6")]
    assert logged == [waiting, later]


def test_an_event_after_one_published_but_not_marked_is_appended_once_after_it(
    redis_client, monkeypatch
):
    first = new_event("risk.alert", {"n": 1}, service="exec-risk", correlation_id="c-9")
    # Another process published it and has yet to mark it.
    monkeypatch.setattr(outbox._marks, "add", lambda ids: None)
    outbox.record([first])
    monkeypatch.undo()
    second = new_event("risk.alert", {"n": 2}, service="exec-risk", correlation_id="c-9")
    outbox.record([second])
    assert log_of("c-9") == [first.event_id, second.event_id]


def test_a_step_that_goes_on_is_relayed_with_its_next_step_or_shortly_after(redis_client):
    requested = new_event("order.requested", {"n": 1}, service="exec-risk", correlation_id="c-10")
    outbox.record([requested], with_next=True)
    assert log_of("c-10") == []  # held for the answer's relay
    filled = new_event("order.filled", {"n": 2}, service="exec-risk", correlation_id="c-10")
    outbox.record([filled])
    assert log_of("c-10") == [requested.event_id, filled.event_id]

    # A step whose story stops there (an order left for a retry) is relayed by itself.
    alone = new_event("order.requested", {"n": 3}, service="exec-risk", correlation_id="c-11")
    outbox.record([alone], with_next=True)
    wait_for(lambda: log_of("c-11") == [alone.event_id], 5, "the held step relayed alone")
    wait_for(lambda: outbox.backlog().rows == 0, 5, "every row marked published")


def test_the_loop_leaves_young_rows_and_republishes_an_unmarked_one_once(redis_client, monkeypatch):
    event = new_event("risk.alert", {"n": 1}, service="exec-risk", correlation_id="c-8")
    # The fast path appends, then its process dies before marking the row.
    monkeypatch.setattr(outbox._marks, "add", lambda ids: None)
    outbox.record([event])
    assert outbox.relay(older_than=60) == 0
    assert outbox.backlog().rows == 1
    assert outbox.relay() == 1
    assert log_of("c-8") == [event.event_id]
    assert outbox.backlog().rows == 0


def test_a_row_published_again_after_a_crash_is_not_appended_twice(redis_client, monkeypatch):
    event = new_event("risk.alert", {"reason": "TEST"}, service="exec-risk", correlation_id="c-3")
    # The relay appends, then dies before it marks the row.
    monkeypatch.setattr(outbox, "_send_handoffs", lambda rows: (_ for _ in ()).throw(SystemExit))
    with pytest.raises(SystemExit):
        outbox.record([event])
        outbox.relay()
    monkeypatch.undo()
    assert outbox.backlog().rows == 1
    assert outbox.relay() == 1
    assert log_of("c-3") == [event.event_id]
    assert outbox.backlog().rows == 0


def test_racing_relays_publish_each_correlation_in_commit_order(redis_client, monkeypatch):
    monkeypatch.setattr(outbox, "_fast_client", lambda url: DeadRedis())
    written = {f"k-{k}": [] for k in range(4)}
    recorded = []
    for step in range(30):
        for correlation_id, ids in written.items():
            event = new_event("risk.alert", {"step": step}, service="exec-risk",
                              correlation_id=correlation_id)  # fmt: skip
            outbox.record([event])
            ids.append(event.event_id)
            recorded.append(event)
    monkeypatch.setattr(outbox, "BATCH", 7)
    errors = []

    def relay() -> None:
        from django.db import connection

        try:
            while outbox.backlog().rows:
                outbox.relay()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=relay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    for correlation_id, ids in written.items():
        assert log_of(correlation_id) == ids
    logged = [event for _, event in read_window(limit=1000, correlation_id="k-0")]
    assert logged == [event for event in recorded if event.correlation_id == "k-0"]


def test_the_backlog_shows_on_exec_risks_health_and_metrics(client, redis_down_after_commit):
    saved_signal(get_account(), symbol="BTCUSDT", side="BUY", notional=Decimal("100"))
    health = client.get("/services/exec-risk/health").json()
    assert health["checks"]["outbox"]["backlog"] == 1
    text = client.get("/services/exec-risk/metrics").content.decode()
    assert "exec_risk_service_outbox_backlog 1.0" in text
    assert "exec_risk_service_outbox_oldest_age_seconds" in text


def test_a_signal_whose_publish_fails_is_accepted_then_filled_once_by_the_relay(
    api, market, service_workers, redis_down_after_commit
):
    response = api.post(
        "/api/v1/signals",
        {"symbol": "BTCUSDT", "side": "BUY", "confidence": 0.9, "notional": "100"},
        format="json",
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert log_of(body["correlation_id"]) == []  # Redis was "down": nothing left yet
    assert Signal.objects.get(pk=body["id"]).status == "pending"

    assert outbox.relay() >= 1  # the relay loop, once Redis answers
    signal = wait_for(
        lambda: Signal.objects.filter(pk=body["id"], status="filled").first(), 20, "the fill"
    )
    assert signal.orders.count() == 1
    generated = [
        e for _, e in read_window(limit=1000, correlation_id=body["correlation_id"])
        if e.type == "signal.generated"
    ]  # fmt: skip
    assert len(generated) == 1 and generated[0].service == "web"
    assert Counter(log_of(body["correlation_id"])).most_common(1)[0][1] == 1
