"""The event log: one Redis stream holding every event of every type, in the order appended.

Retention is bounded: each append trims the stream to about ``settings.EVENT_LOG_MAXLEN``
entries (``XADD ... MAXLEN ~``; Redis trims whole nodes, so the stream may hold somewhat more,
never fewer). Events a consumer group has not acknowledged stay readable by that group only
while they are in the stream: size the bound for the longest outage consumers must survive.

Stream ids are the time Redis appended the entry (``<ms>-<seq>``): ``trading.events.replay``
reads windows of history by them.

The stream keys follow ``settings.REDIS_PREFIX`` when they are used, so ``events_stream()`` and
``dead_letter_stream()`` are functions; ``EVENTS_STREAM`` and ``DEAD_LETTER_STREAM`` are the same
keys read as module attributes (``log.EVENTS_STREAM``), computed on each access.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import redis
from django.conf import settings

from trading.events.broadcast import broadcast
from trading.events.envelope import Event
from trading.events.types import EventType
from trading.observability.metrics import Kind, declare_for_each_service
from trading.observability.services import SERVICES
from trading.store import redis_client, rkey

DEFAULT_MAXLEN = 100_000

# One counter per trading service; events of "web" and "feed" are not counted.
EVENTS_PUBLISHED = declare_for_each_service(
    "events_published_total",
    Kind.COUNTER,
    "Events this service appended to the event log",
    {"type": EventType},
)


def events_stream() -> str:
    """The key of the stream that holds every event."""
    return rkey("events")


def dead_letter_stream() -> str:
    """The key of the stream of events no consumer could handle (see ``consumer``)."""
    return rkey("events", "dead")


def __getattr__(name: str) -> str:
    if name == "EVENTS_STREAM":
        return events_stream()
    if name == "DEAD_LETTER_STREAM":
        return dead_letter_stream()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def maxlen() -> int:
    """The approximate bound on the number of entries the event log keeps."""
    value = getattr(settings, "EVENT_LOG_MAXLEN", DEFAULT_MAXLEN)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"EVENT_LOG_MAXLEN must be a positive integer, got {value!r}")
    return value


def publish(event: Event, *, client: redis.Redis | None = None) -> str:
    """Appends the event to the log now and returns its stream id; raises if Redis fails.

    Direct publishing is for events that describe no change to the database: the feed's
    ``market.bar`` (its state, the latest quotes and bars, is in Redis itself) and copies made
    by ``trading.events.replay``. An event about a change to the database goes through
    ``trading.events.outbox.record`` in the transaction of that change."""
    return publish_many([event], client=client)[0]


def publish_many(events: Iterable[Event], *, client: redis.Redis | None = None) -> list[str]:
    """Appends the events, in order and all or none (one MULTI/EXEC round trip), and returns
    their stream ids in the same order. See ``publish`` for which events may come this way."""
    events = list(events)
    if not events:
        return []
    stream, bound = events_stream(), maxlen()
    pipe = (client or redis_client()).pipeline(transaction=True)
    for event in events:
        pipe.xadd(stream, event.to_fields(), maxlen=bound, approximate=True)
    counts = Counter((e.service, e.type) for e in events if e.service in SERVICES)
    for (service, type_), count in counts.items():
        EVENTS_PUBLISHED[service].inc(count, client=pipe, type=type_)
    ids = [str(stream_id) for stream_id in pipe.execute()[: len(events)]]
    broadcast(events)
    return ids
