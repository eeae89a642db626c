"""Consumer groups against a real Redis and the test database.

The work a test handler does is a database row: a ProcessedEvent under a consumer name of its
own ("effect:<random>"), so that doing the work twice leaves two rows and a rolled-back
transaction leaves none.
"""

import logging
import threading
import time
import uuid
from collections import Counter

import pytest
import redis
from django.db import OperationalError, transaction

from tests.support.processes import wait_for
from trading.events import consumer as consumer_module
from trading.events.consumer import DrainResult, StreamConsumer, ensure_group
from trading.events.envelope import Event, new_event
from trading.events.log import dead_letter_stream, events_stream, publish, publish_many
from trading.models import ProcessedEvent

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "portfolio"


def an_event(i: int = 0, type: str = "order.filled") -> Event:
    return new_event(type, {"n": i}, service="exec-risk", correlation_id=f"sig-{i}")


def record_effect(event: Event) -> None:
    ProcessedEvent.objects.create(consumer=f"effect:{uuid.uuid4().hex}", event_id=event.event_id)


def effects() -> list[str]:
    """The event ids whose work was committed, once per time it was done."""
    rows = ProcessedEvent.objects.filter(consumer__startswith="effect:")
    return sorted(str(event_id) for event_id in rows.values_list("event_id", flat=True))


def pending(client) -> list[dict]:
    return client.xpending_range(events_stream(), GROUP, "-", "+", 1000)


def dead_letters(client) -> list[dict[str, str]]:
    return [fields for _, fields in client.xrange(dead_letter_stream())]


class Flaky:
    """A handler that fails its first ``failures`` calls, then does the work."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, event: Event) -> None:
        self.calls += 1
        record_effect(event)  # rolled back when the call fails
        if self.calls <= self.failures:
            raise RuntimeError(f"exchange says no (call {self.calls})")


def test_two_consumers_in_one_group_share_the_work_without_overlap(redis_client):
    events = [an_event(i) for i in range(60)]
    publish_many(events)
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def handler_for(name):
        def handle(event):
            seen[name].append(event.event_id)
            record_effect(event)

        return handle

    a = StreamConsumer(GROUP, "a", handler_for("a"), batch=5)
    b = StreamConsumer(GROUP, "b", handler_for("b"), batch=5)
    while True:
        done = [c.drain(max_events=7).handled for c in (a, b)]
        if not any(done):
            break

    assert seen["a"] and seen["b"]
    assert not set(seen["a"]) & set(seen["b"])
    assert sorted(seen["a"] + seen["b"]) == sorted(e.event_id for e in events)
    assert effects() == sorted(e.event_id for e in events)
    assert pending(redis_client) == []


def test_an_event_is_acknowledged_only_after_its_work_is_committed(redis_client):
    event = an_event()
    stream_id = publish(event)
    observed = {}

    def handle(event):
        record_effect(event)
        observed["while working"] = [p["message_id"] for p in pending(redis_client)]
        transaction.on_commit(
            lambda: observed.update({"at commit": [p["message_id"] for p in pending(redis_client)]})
        )

    result = StreamConsumer(GROUP, "a", handle).drain()

    assert result == DrainResult(handled=1)
    assert observed == {"while working": [stream_id], "at commit": [stream_id]}
    assert effects() == [event.event_id]
    assert pending(redis_client) == []


def test_a_handler_failure_rolls_back_leaves_the_event_pending_and_a_later_drain_redelivers_it(
    redis_client,
):
    event = an_event()
    stream_id = publish(event)
    handler = Flaky(failures=1)
    consumer = StreamConsumer(GROUP, "a", handler, reclaim_idle_ms=200)

    assert consumer.drain() == DrainResult(failed=1)
    assert effects() == []
    assert not ProcessedEvent.objects.filter(consumer=GROUP).exists()
    assert [p["message_id"] for p in pending(redis_client)] == [stream_id]

    # Retried only once it has been idle for reclaim_idle_ms: the back-off between attempts.
    assert consumer.drain() == DrainResult()
    time.sleep(0.3)
    assert consumer.drain() == DrainResult(handled=1, reclaimed=1)
    assert handler.calls == 2
    assert effects() == [event.event_id]
    assert pending(redis_client) == []


def test_the_events_of_a_consumer_that_died_are_reclaimed_by_another_after_the_idle_time(
    redis_client,
):
    events = [an_event(i) for i in range(5)]
    publish_many(events)
    ensure_group(redis_client, GROUP)
    # "dead" takes the events and is never heard of again.
    redis_client.xreadgroup(GROUP, "dead", {events_stream(): ">"}, count=10)
    assert {p["consumer"] for p in pending(redis_client)} == {"dead"}

    live = StreamConsumer(GROUP, "live", record_effect, reclaim_idle_ms=300)
    assert live.drain() == DrainResult()  # not idle long enough yet
    assert effects() == []
    time.sleep(0.4)

    assert live.drain() == DrainResult(handled=5, reclaimed=5)
    assert effects() == sorted(e.event_id for e in events)
    assert pending(redis_client) == []


def test_after_max_deliveries_failures_the_event_is_dead_lettered_with_its_error_and_acked(
    redis_client,
):
    event = an_event()
    stream_id = publish(event)
    handler = Flaky(failures=100)
    consumer = StreamConsumer(GROUP, "a", handler, reclaim_idle_ms=0, max_deliveries=3)

    assert consumer.drain() == DrainResult(failed=1)
    assert consumer.drain() == DrainResult(failed=1, reclaimed=1)
    assert dead_letters(redis_client) == []
    assert consumer.drain() == DrainResult(dead_lettered=1, reclaimed=1)

    [dead] = dead_letters(redis_client)
    assert dead["dead_error"] == "RuntimeError: exchange says no (call 3)"
    assert dead["dead_group"] == GROUP
    assert dead["dead_consumer"] == "a"
    assert dead["dead_stream_id"] == stream_id
    assert dead["dead_deliveries"] == "3"
    assert Event.from_fields(dead) == event
    assert pending(redis_client) == []
    assert consumer.drain() == DrainResult()
    assert handler.calls == 3
    assert effects() == []


def test_an_event_whose_consumers_died_handling_it_too_often_is_dead_lettered_unrun(
    redis_client,
):
    publish(an_event())
    ensure_group(redis_client, GROUP)
    stream = events_stream()
    [[_, [(stream_id, _)]]] = redis_client.xreadgroup(GROUP, "dead-1", {stream: ">"})
    redis_client.xclaim(stream, GROUP, "dead-2", 0, [stream_id])
    handler = Flaky(failures=0)
    consumer = StreamConsumer(GROUP, "a", handler, reclaim_idle_ms=0, max_deliveries=2)

    assert consumer.drain() == DrainResult(dead_lettered=1, reclaimed=1)
    assert handler.calls == 0
    [dead] = dead_letters(redis_client)
    assert "delivered 3 times without finishing" in dead["dead_error"]
    assert pending(redis_client) == []


def test_a_malformed_entry_goes_straight_to_the_dead_letter_stream(redis_client):
    stream_id = redis_client.xadd(events_stream(), {"junk": "1"})
    handler = Flaky(failures=0)

    result = StreamConsumer(GROUP, "a", handler, max_deliveries=5).drain()

    assert result == DrainResult(dead_lettered=1)
    assert handler.calls == 0
    [dead] = dead_letters(redis_client)
    assert dead["junk"] == "1"
    assert dead["dead_error"].startswith("malformed event: missing fields: event_id")
    assert dead["dead_stream_id"] == stream_id
    assert pending(redis_client) == []


def test_a_duplicate_delivery_of_one_event_id_does_the_work_once(redis_client):
    event = an_event()
    publish(event)
    publish(event)  # the producer retried after a timeout

    result = StreamConsumer(GROUP, "a", record_effect).drain()

    assert result == DrainResult(handled=1, skipped_duplicates=1)
    assert effects() == [event.event_id]
    assert pending(redis_client) == []


def test_work_committed_by_a_consumer_that_died_before_acking_is_not_done_again(
    redis_client, monkeypatch
):
    event = an_event()
    publish(event)
    dying = StreamConsumer(GROUP, "dying", record_effect)
    monkeypatch.setattr(dying, "_ack", lambda *stream_ids: None)  # dies between commit and XACK
    assert dying.drain() == DrainResult(handled=1)
    assert len(pending(redis_client)) == 1

    time.sleep(0.1)
    other = StreamConsumer(GROUP, "other", record_effect, reclaim_idle_ms=50)
    assert other.drain() == DrainResult(skipped_duplicates=1, reclaimed=1)
    assert effects() == [event.event_id]
    assert pending(redis_client) == []


def test_the_same_event_is_handled_once_by_each_group(redis_client):
    event = an_event()
    publish(event)
    StreamConsumer("portfolio", "a", record_effect).drain()
    StreamConsumer("learning", "a", record_effect).drain()
    assert effects() == [event.event_id, event.event_id]


def test_events_of_other_types_are_acked_without_work(redis_client):
    fill = an_event(1, type="order.filled")
    publish_many([an_event(0, type="market.bar"), fill, an_event(2, type="risk.alert")])

    result = StreamConsumer(GROUP, "a", record_effect, types={"order.filled"}).drain()

    assert result == DrainResult(handled=1, ignored=2)
    assert effects() == [fill.event_id]
    assert ProcessedEvent.objects.filter(consumer=GROUP).count() == 1
    assert pending(redis_client) == []


def test_a_handler_failure_is_logged_with_the_event_and_correlation_ids(redis_client, caplog):
    event = an_event(7)
    publish(event)

    with caplog.at_level(logging.ERROR, logger="trading.events.consumer"):
        StreamConsumer(GROUP, "a", Flaky(failures=1)).drain()

    [record] = caplog.records
    assert record.event_id == event.event_id
    assert record.correlation_id == "sig-7"
    assert event.event_id in record.getMessage()
    assert "sig-7" in record.getMessage()
    assert "exchange says no" in caplog.text  # the traceback


def test_max_events_bounds_a_drain(redis_client):
    publish_many([an_event(i) for i in range(10)])
    consumer = StreamConsumer(GROUP, "a", record_effect, batch=3)
    assert consumer.drain(max_events=4) == DrainResult(handled=4)
    assert consumer.drain() == DrainResult(handled=6)


def test_ensure_group_is_idempotent_and_can_start_at_new_events(redis_client):
    publish(an_event(0))
    assert ensure_group(redis_client, GROUP, start="$") is True
    assert ensure_group(redis_client, GROUP) is False  # keeps its position
    later = an_event(1)
    publish(later)

    assert StreamConsumer(GROUP, "a", record_effect).drain() == DrainResult(handled=1)
    assert effects() == [later.event_id]


def test_run_forever_handles_events_as_they_arrive_until_stopped(redis_client):
    consumer = StreamConsumer(GROUP, "a", record_effect)
    stop = threading.Event()
    outcome: list[DrainResult] = []
    thread = threading.Thread(target=lambda: outcome.append(consumer.run_forever(stop, 100)))
    thread.start()
    try:
        events = [an_event(i) for i in range(3)]
        for event in events:
            publish(event)
        wait_for(lambda: len(effects()) == 3, 10, "three events handled")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert outcome == [DrainResult(handled=3)]
    assert effects() == sorted(e.event_id for e in events)
    assert pending(redis_client) == []


# --- Batches: the entries of one read share one transaction and one XACK ----------------------


class RecordingClient:
    """The consumer's Redis client, noting each XACK it sends: the ids, whether a database
    transaction was open at that moment, and the effects then in the database (outside a
    transaction, in autocommit, what this connection sees is committed). The dead-letter
    stream's XACK goes through a pipeline and is not noted."""

    def __init__(self, client) -> None:
        self._client = client
        self.acks: list[dict] = []

    def __getattr__(self, name):
        return getattr(self._client, name)

    def xack(self, stream, group, *stream_ids):
        self.acks.append(
            {
                "ids": list(stream_ids),
                "in_transaction": transaction.get_connection().in_atomic_block,
                "effects": effects(),
            }
        )
        return self._client.xack(stream, group, *stream_ids)


class DyingOnAck(RecordingClient):
    """A client whose XACK never arrives: the process died after its commit."""

    def xack(self, stream, group, *stream_ids):
        raise redis.ConnectionError("the consumer died before its XACK")


def count_commits(monkeypatch) -> list[int]:
    """Counts the commits of the test's database connection from now on: [n]."""
    database = transaction.get_connection()
    commit, count = database.commit, [0]

    def counting_commit():
        count[0] += 1
        commit()

    monkeypatch.setattr(database, "commit", counting_commit)
    return count


class Calls:
    """A handler doing the work and noting, per event id, how often it ran."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, event: Event) -> None:
        self.counts[event.event_id] += 1
        record_effect(event)


def test_a_batch_is_committed_in_one_transaction_then_acknowledged_in_one_xack(
    redis_client, monkeypatch
):
    events = [an_event(i) for i in range(5)]
    stream_ids = publish_many(events)
    client = RecordingClient(redis_client)
    commits = count_commits(monkeypatch)

    result = StreamConsumer(GROUP, "a", record_effect, client=client).drain()

    assert result == DrainResult(handled=5)
    assert commits == [1]
    all_done = sorted(e.event_id for e in events)
    assert client.acks == [{"ids": stream_ids, "in_transaction": False, "effects": all_done}]
    assert pending(redis_client) == []


def fail_by_raising(event: Event) -> None:
    raise RuntimeError("exchange says no")


def fail_in_the_database(event: Event) -> None:
    # The consumer has recorded this event for the group already: a unique constraint fails.
    ProcessedEvent.objects.create(consumer=GROUP, event_id=event.event_id)


def fail_by_marking_for_rollback(event: Event) -> None:
    transaction.set_rollback(True)


@pytest.mark.parametrize(
    ("fail", "error"),
    [
        (fail_by_raising, "RuntimeError: exchange says no"),
        (fail_in_the_database, "IntegrityError: UNIQUE constraint failed"),
        (fail_by_marking_for_rollback, "TransactionManagementError: the handler left"),
    ],
)
def test_a_handler_failing_mid_batch_costs_only_its_own_event_retried_then_dead_lettered(
    redis_client, fail, error
):
    events = [an_event(i) for i in range(5)]
    stream_ids = publish_many(events)
    bad = events[2]
    calls = Calls()
    on_commit_actions: list[str] = []  # what a handler publishes or enqueues, on commit

    def handle(event: Event) -> None:
        calls(event)
        transaction.on_commit(lambda: on_commit_actions.append(event.event_id))
        if event == bad:
            fail(event)

    client = RecordingClient(redis_client)
    consumer = StreamConsumer(
        GROUP, "a", handle, client=client, reclaim_idle_ms=0, max_deliveries=2
    )

    assert consumer.drain() == DrainResult(handled=4, failed=1)
    good = [e.event_id for e in events if e != bad]
    assert effects() == sorted(good)
    assert on_commit_actions == good
    assert calls.counts == {e.event_id: 1 for e in events}  # no handler ran again
    assert not ProcessedEvent.objects.filter(consumer=GROUP, event_id=bad.event_id).exists()
    assert [ack["ids"] for ack in client.acks] == [[stream_ids[i] for i in (0, 1, 3, 4)]]
    assert [p["message_id"] for p in pending(redis_client)] == [stream_ids[2]]

    # Retried (reclaim_idle_ms=0: at once): it fails again, its last allowed delivery.
    assert consumer.drain() == DrainResult(dead_lettered=1, reclaimed=1)
    [dead] = dead_letters(redis_client)
    assert dead["dead_stream_id"] == stream_ids[2]
    assert dead["dead_error"].startswith(error)
    assert dead["dead_deliveries"] == "2"
    assert calls.counts == {e.event_id: 2 if e == bad else 1 for e in events}
    assert effects() == sorted(good)
    assert on_commit_actions == good
    assert pending(redis_client) == []


def test_a_consumer_dying_between_a_batch_commit_and_its_xack_leaves_nothing_to_redo(
    redis_client,
):
    events = [an_event(i) for i in range(4)]
    publish_many(events)
    calls = Calls()
    dying = StreamConsumer(GROUP, "dying", calls, client=DyingOnAck(redis_client))

    with pytest.raises(redis.ConnectionError):
        dying.drain()
    all_done = sorted(e.event_id for e in events)
    assert effects() == all_done  # committed
    assert len(pending(redis_client)) == 4  # but not acknowledged

    time.sleep(0.1)
    other = StreamConsumer(GROUP, "other", calls, reclaim_idle_ms=50)
    assert other.drain() == DrainResult(skipped_duplicates=4, reclaimed=4)
    assert calls.counts == {e.event_id: 1 for e in events}
    assert effects() == all_done
    assert pending(redis_client) == []


def test_events_of_a_batch_processed_already_are_skipped_and_acknowledged_with_it(
    redis_client,
):
    earlier = [an_event(i) for i in range(2)]
    publish_many(earlier)
    calls = Calls()
    assert StreamConsumer(GROUP, "a", calls).drain() == DrainResult(handled=2)
    new = an_event(2)
    # A producer retrying, around a new event: all three in one batch.
    stream_ids = publish_many([earlier[0], new, earlier[1]])
    client = RecordingClient(redis_client)

    result = StreamConsumer(GROUP, "a", calls, client=client).drain()

    assert result == DrainResult(handled=1, skipped_duplicates=2)
    assert calls.counts == {e.event_id: 1 for e in [*earlier, new]}
    assert effects() == sorted(e.event_id for e in [*earlier, new])
    assert [ack["ids"] for ack in client.acks] == [stream_ids]
    assert pending(redis_client) == []


def test_an_event_id_twice_in_one_batch_whose_first_copy_fails_is_done_by_the_second(
    redis_client,
):
    event = an_event()
    stream_ids = publish_many([event, event])
    handler = Flaky(failures=1)
    consumer = StreamConsumer(GROUP, "a", handler, reclaim_idle_ms=0)

    assert consumer.drain() == DrainResult(failed=1, handled=1)
    assert effects() == [event.event_id]
    assert [p["message_id"] for p in pending(redis_client)] == [stream_ids[0]]
    assert consumer.drain() == DrainResult(skipped_duplicates=1, reclaimed=1)
    assert handler.calls == 2
    assert pending(redis_client) == []


def test_a_batch_whose_commit_fails_is_rolled_back_and_done_again_one_event_at_a_time(
    redis_client, monkeypatch, caplog
):
    events = [an_event(i) for i in range(3)]
    publish_many(events)
    database = transaction.get_connection()
    commit, refused = database.commit, []

    def commit_refused_once():
        if not refused:
            refused.append(True)
            raise OperationalError("database is locked")
        commit()

    monkeypatch.setattr(database, "commit", commit_refused_once)
    calls = Calls()

    result = StreamConsumer(GROUP, "a", calls).drain()

    assert result == DrainResult(handled=3)
    assert refused == [True]
    # Once in the batch that rolled back, once alone.
    assert calls.counts == {e.event_id: 2 for e in events}
    assert effects() == sorted(e.event_id for e in events)
    assert ProcessedEvent.objects.filter(consumer=GROUP).count() == 3
    assert pending(redis_client) == []
    assert "a batch of 3 events rolled back" in caplog.text


def test_an_on_commit_action_raising_after_the_batch_committed_neither_undoes_nor_redoes_it(
    redis_client, caplog
):
    events = [an_event(i) for i in range(3)]
    publish_many(events)
    calls = Calls()

    def handle(event: Event) -> None:
        calls(event)
        if event == events[1]:
            transaction.on_commit(lambda: 1 / 0)

    result = StreamConsumer(GROUP, "a", handle).drain()

    assert result == DrainResult(handled=3)
    assert effects() == sorted(e.event_id for e in events)
    assert pending(redis_client) == []
    assert "an on-commit action failed after its transaction committed" in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_a_batch_meeting_a_racing_consumers_record_falls_back_without_running_twice(
    redis_client, monkeypatch
):
    events = [an_event(i) for i in range(3)]
    publish_many(events)
    raced = events[1]
    # Another consumer of the group commits this event just after the batch looked it up.
    ProcessedEvent.objects.create(consumer=GROUP, event_id=raced.event_id)
    monkeypatch.setattr(consumer_module, "_processed_already", lambda group, event_ids: set())
    calls = Calls()

    result = StreamConsumer(GROUP, "a", calls).drain()

    assert result == DrainResult(handled=2, skipped_duplicates=1)
    # The batch failed on recording the events, before any handler ran.
    assert calls.counts == {e.event_id: 1 for e in events if e != raced}
    assert pending(redis_client) == []


def test_a_drain_longer_than_its_lock_keeps_it_by_renewing(monkeypatch):
    """The drain lock lives DRAIN_LOCK_SECONDS so that a crashed drain blocks its group only that
    long; a live drain that runs longer renews it, and no second drain starts meanwhile."""
    monkeypatch.setattr(consumer_module, "DRAIN_LOCK_SECONDS", 0.6)
    publish_many([an_event(i) for i in range(3)])
    started, second = threading.Event(), {}

    def slow(event: Event) -> None:
        started.set()
        time.sleep(0.7)  # three events: 2.1 s, three and a half lock lifetimes

    def run() -> None:
        second["first"] = consumer_module.drain_exclusively(GROUP, slow)

    drain = threading.Thread(target=run)
    drain.start()
    assert started.wait(5)
    time.sleep(1.5)  # past two lifetimes of an unrenewed lock
    second["during"] = consumer_module.drain_exclusively(GROUP, slow)
    drain.join(10)
    assert second["during"] == {"skipped": "another drain is running"}
    assert second["first"]["handled"] == 3
    # Released at the end: the next drain runs (and finds nothing left).
    assert "skipped" not in consumer_module.drain_exclusively(GROUP, slow)
