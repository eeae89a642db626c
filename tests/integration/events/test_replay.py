from datetime import UTC, datetime, timedelta

import pytest

from trading.events import replay
from trading.events.consumer import DrainResult, StreamConsumer
from trading.events.envelope import Event, new_event
from trading.events.log import events_stream, publish_many
from trading.events.replay import read_window, republish

NEW_YEAR = datetime(2025, 1, 1, tzinfo=UTC)
T = 1_735_689_600_000  # NEW_YEAR in ms since the epoch, as a stream id's time part


def an_event(type: str, n: int = 0) -> Event:
    return new_event(type, {"n": n}, service="exec-risk", correlation_id=f"sig-{n}")


def append_at(client, stream_id: str, event: Event) -> tuple[str, Event]:
    """Appends as if Redis's clock had read the id's time: stream ids are the log's time."""
    return client.xadd(events_stream(), event.to_fields(), id=stream_id), event


@pytest.fixture
def history(redis_client) -> dict[str, tuple[str, Event]]:
    spec = {
        "a": (f"{T - 1}-0", "market.bar"),
        "b": (f"{T}-0", "order.filled"),
        "c": (f"{T}-5", "market.bar"),
        "d": (f"{T + 1000}-0", "order.filled"),
        "e": (f"{T + 1000}-1", "market.bar"),
        "f": (f"{T + 1001}-0", "order.filled"),
    }
    return {
        name: append_at(redis_client, stream_id, an_event(type, i))
        for i, (name, (stream_id, type)) in enumerate(spec.items())
    }


def names(window, history) -> list[str]:
    by_id = {stream_id: name for name, (stream_id, _) in history.items()}
    return [by_id[stream_id] for stream_id, _ in window]


def test_a_window_holds_the_events_appended_between_since_and_until_inclusive(history):
    window = read_window(since=NEW_YEAR, until=NEW_YEAR + timedelta(seconds=1))
    assert names(window, history) == ["b", "c", "d", "e"]
    assert [event for _, event in window] == [history[n][1] for n in "bcde"]


def test_the_window_bounds_are_whole_milliseconds(history):
    within_first_ms = NEW_YEAR + timedelta(microseconds=900)
    assert names(read_window(since=within_first_ms, until=within_first_ms), history) == ["b", "c"]


def test_an_open_window_holds_the_whole_log_oldest_first(history):
    assert names(read_window(), history) == ["a", "b", "c", "d", "e", "f"]
    assert names(read_window(until=NEW_YEAR), history) == ["a", "b", "c"]
    assert names(read_window(since=NEW_YEAR + timedelta(seconds=1)), history) == ["d", "e", "f"]


def test_a_window_can_be_limited_to_some_types(history):
    assert names(read_window(types={"order.filled"}), history) == ["b", "d", "f"]
    assert names(read_window(types="market.bar", since=NEW_YEAR), history) == ["c", "e"]
    assert read_window(types={"risk.alert"}) == []


def test_the_limit_keeps_the_oldest_and_after_id_pages_on(history):
    first = read_window(types={"order.filled"}, limit=2)
    assert names(first, history) == ["b", "d"]
    rest = read_window(types={"order.filled"}, limit=2, after_id=first[-1][0])
    assert names(rest, history) == ["f"]
    assert names(read_window(since=NEW_YEAR, after_id=history["a"][0]), history)[0] == "b"
    assert names(read_window(since=NEW_YEAR, after_id=history["d"][0]), history) == ["e", "f"]


def test_type_filtering_reads_past_a_chunk_of_other_events(redis_client, monkeypatch):
    monkeypatch.setattr(replay, "SCAN_CHUNK", 10)
    bars = [an_event("market.bar", i) for i in range(25)]
    fills = [an_event("order.filled", i) for i in range(3)]
    publish_many([*bars, *fills])
    window = read_window(types={"order.filled"}, limit=2)
    assert [event for _, event in window] == fills[:2]


def test_paging_by_after_id_walks_the_log_without_gaps_or_repeats(redis_client):
    events = [an_event("market.bar", i) for i in range(10)]
    publish_many(events)
    seen, after = [], None
    while page := read_window(limit=4, after_id=after):
        seen.extend(event for _, event in page)
        after = page[-1][0]
    assert seen == events


def test_malformed_entries_are_skipped(redis_client):
    redis_client.xadd(events_stream(), {"junk": "1"})
    event = an_event("market.bar")
    publish_many([event])
    assert [e for _, e in read_window()] == [event]


@pytest.mark.parametrize("limit", [0, 1001, -5, True, "10"])
def test_a_limit_outside_1_to_1000_is_refused(limit):
    with pytest.raises(ValueError, match="limit must be an integer from 1 to 1000"):
        read_window(limit=limit)


def test_naive_times_and_bad_ids_are_refused():
    with pytest.raises(ValueError, match="since must be an aware datetime"):
        read_window(since=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="after_id must be a stream id"):
        read_window(after_id="yesterday")


def test_republished_copies_get_new_ids_and_name_their_original(redis_client):
    originals = [an_event("order.filled", i) for i in range(3)]
    publish_many(originals)

    copies = republish(event for _, event in read_window())

    assert len(copies) == 3
    for original, (_, copy) in zip(originals, copies, strict=True):
        assert copy.event_id != original.event_id
        assert copy.replay_of == original.event_id
        assert copy.payload == {**original.payload, "replay_of": original.event_id}
        assert (copy.type, copy.ts, copy.service, copy.correlation_id, copy.schema) == (
            original.type,
            original.ts,
            original.service,
            original.correlation_id,
            original.schema,
        )
    assert read_window()[3:] == copies


def test_a_replay_of_a_replay_names_the_first_original(redis_client):
    original = an_event("order.filled")
    [(_, copy)] = republish([original])
    [(_, copy_of_copy)] = republish([copy])
    assert copy_of_copy.replay_of == original.event_id
    assert len({original.event_id, copy.event_id, copy_of_copy.event_id}) == 3


@pytest.mark.django_db(transaction=True)
def test_a_group_that_handled_the_originals_handles_the_replayed_copies(redis_client):
    publish_many([an_event("order.filled", i) for i in range(3)])
    handled: list[Event] = []
    consumer = StreamConsumer("projection", "a", handled.append)
    assert consumer.drain() == DrainResult(handled=3)

    republish(event for _, event in read_window())

    assert consumer.drain() == DrainResult(handled=3)
    assert [e.replay_of for e in handled[3:]] == [e.event_id for e in handled[:3]]


def test_a_window_can_be_limited_to_one_trade_by_correlation_id(redis_client):
    trade = [an_event(t, 7) for t in ("signal.generated", "order.requested", "order.filled")]
    others = [an_event("order.filled", n) for n in (1, 2)]
    publish_many([others[0], trade[0], trade[1], others[1], trade[2]])

    window = read_window(correlation_id="sig-7")
    assert [event for _, event in window] == trade
    fills = read_window(correlation_id="sig-7", types={"order.filled"})
    assert [event for _, event in fills] == trade[2:]
    assert read_window(correlation_id="sig-99") == []
