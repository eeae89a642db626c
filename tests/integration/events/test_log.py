from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trading.events import log
from trading.events.envelope import Event, new_event
from trading.events.log import events_stream, publish, publish_many
from trading.observability.metrics import build_families, declared, read_samples, render


def a_bar(i: int = 0, service: str = "feed") -> Event:
    return new_event("market.bar", {"symbol": "BTCUSDT", "close": Decimal(i)}, service=service)


def published_counts(client, service: str) -> dict[str, float]:
    """The event types the service's page counts as published (the types at 0 left out: every
    known type is shown from the first scrape)."""
    text = render(build_families(declared(service), read_samples(client, service))).decode()
    return {
        sample.labels["type"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == f"{family.name}_total"
        and family.name.endswith("events_published")
        and sample.value
    }


def test_a_published_event_is_appended_to_the_stream_and_reads_back_unchanged(redis_client):
    event = new_event(
        "order.filled", {"qty": Decimal("0.5")}, service="exec-risk", correlation_id="sig-7"
    )
    stream_id = publish(event)
    [(read_id, fields)] = redis_client.xrange(events_stream())
    assert read_id == stream_id
    assert Event.from_fields(fields) == event


def test_publish_many_appends_all_events_in_their_order(redis_client):
    events = [a_bar(i) for i in range(5)]
    ids = publish_many(events)
    entries = redis_client.xrange(events_stream())
    assert [stream_id for stream_id, _ in entries] == ids
    assert [Event.from_fields(fields) for _, fields in entries] == events
    assert publish_many([]) == []


def test_the_stream_keys_follow_the_redis_prefix(settings, own_prefix):
    assert log.EVENTS_STREAM == f"{own_prefix}:events"
    assert log.DEAD_LETTER_STREAM == f"{own_prefix}:events:dead"
    settings.REDIS_PREFIX = "elsewhere"
    assert log.EVENTS_STREAM == "elsewhere:events"


def test_maxlen_trims_the_oldest_events_to_about_the_configured_bound(settings, redis_client):
    settings.EVENT_LOG_MAXLEN = 100
    events = [a_bar(i) for i in range(1000)]
    for start in range(0, 1000, 50):
        publish_many(events[start : start + 50])
    length = redis_client.xlen(events_stream())
    # "~" trims whole nodes of the stream (100 entries each by default): never below the bound.
    assert 100 <= length <= 300
    kept = [Event.from_fields(f).event_id for _, f in redis_client.xrange(events_stream())]
    assert kept == [e.event_id for e in events[-length:]]


def test_a_bad_maxlen_setting_fails_loudly(settings):
    settings.EVENT_LOG_MAXLEN = "lots"
    with pytest.raises(ValueError, match="EVENT_LOG_MAXLEN must be a positive integer"):
        publish(a_bar())


def test_published_events_are_counted_per_service_and_type_for_trading_services(redis_client):
    publish_many([a_bar(i, service="ai") for i in range(3)])
    publish(new_event("signal.generated", {}, service="ai"))
    publish(a_bar(service="feed"))
    assert published_counts(redis_client, "ai") == {"market.bar": 3, "signal.generated": 1}
    assert published_counts(redis_client, "exec-risk") == {}
