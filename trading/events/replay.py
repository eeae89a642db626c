"""Reading windows of the event log's history, and feeding them through the consumers again.

Windows are in log time: the time Redis appended each entry, which is its stream id
(``<ms>-<seq>``). For events published as they happen that is within milliseconds of their
``ts``; a re-published event keeps the ``ts`` of its original but is appended now. Only what
the log still retains (``EVENT_LOG_MAXLEN``) can be read.

``republish`` gives each copy a NEW ``event_id`` and records the original's in the payload as
``replay_of``. New ids because consumers are idempotent by ``event_id``: a copy under the old id
would be skipped by every group that handled the original, and the replay would do nothing. So a
replay IS processed again, by every group; consumers whose effects must not repeat (placing
orders from ``order.requested``, counting fills twice) must check ``event.replay_of`` and ignore
or handle replays on purpose. Replay into projections that are rebuilt from scratch, or into a
group created for the purpose.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import redis

from trading.events.envelope import Event, MalformedEvent
from trading.events.log import events_stream, publish_many
from trading.store import redis_client

logger = logging.getLogger(__name__)

MAX_LIMIT = 1000
# Entries read per XRANGE while filtering by type.
SCAN_CHUNK = 1000
_MAX_SEQ = 2**64 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STREAM_ID = re.compile(r"(\d+)-(\d+)")


def _ms(moment: datetime, name: str) -> int:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {moment!r}")
    return max((moment - _EPOCH) // timedelta(milliseconds=1), 0)


def first_id_at(moment: datetime) -> str:
    """The smallest stream id appended in ``moment``'s millisecond."""
    return f"{_ms(moment, 'since')}-0"


def last_id_at(moment: datetime) -> str:
    """The largest stream id appended in ``moment``'s millisecond."""
    return f"{_ms(moment, 'until')}-{_MAX_SEQ}"


def _parse_id(stream_id: str) -> tuple[int, int]:
    match = _STREAM_ID.fullmatch(stream_id) if isinstance(stream_id, str) else None
    if match is None:
        raise ValueError(f"after_id must be a stream id like '1735689600000-0', got {stream_id!r}")
    return int(match[1]), int(match[2])


def read_window(
    *,
    types: Iterable[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    after_id: str | None = None,
    correlation_id: str | None = None,
    client: redis.Redis | None = None,
) -> list[tuple[str, Event]]:
    """The events appended from ``since`` to ``until`` (both inclusive, to the millisecond;
    open-ended when None) and after the stream id ``after_id`` (exclusive, to page on), of the
    given types and correlation id (any when None), oldest first, at most ``limit`` (1 to 1000)
    of them, each with its stream id. Entries that are not valid events are skipped and logged.

    Filtering happens here, not in Redis: a rare type or one trade's events may take a scan of
    the whole retained log (``SCAN_CHUNK`` entries per round trip; only matches are parsed)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    wanted = frozenset([types] if isinstance(types, str) else types) if types is not None else None
    start = first_id_at(since) if since is not None else "-"
    end = last_id_at(until) if until is not None else "+"
    if after_id is not None:
        after = _parse_id(after_id)
        if since is None or after >= _parse_id(start):
            start = f"({after_id}"

    client = client or redis_client()
    stream = events_stream()
    found: list[tuple[str, Event]] = []
    filtering = wanted is not None or correlation_id is not None
    chunk = SCAN_CHUNK if filtering else limit
    while True:
        entries = client.xrange(stream, start, end, count=chunk)
        for stream_id, fields in entries:
            if wanted is not None and _raw(fields, "type") not in wanted:
                continue
            if correlation_id is not None and _raw(fields, "correlation_id") != correlation_id:
                continue
            try:
                event = Event.from_fields(fields)
            except MalformedEvent as error:
                logger.warning("skipping malformed event log entry %s: %s", stream_id, error)
                continue
            found.append((stream_id, event))
            if len(found) == limit:
                return found
        if len(entries) < chunk:
            return found
        start = f"({entries[-1][0]}"


def _raw(fields: Mapping[str | bytes, str | bytes], name: str) -> str | None:
    """One field of a stream entry as text, before the entry is parsed (None if absent)."""
    value = fields.get(name, fields.get(name.encode()))
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def republish(
    events: Iterable[Event], *, client: redis.Redis | None = None
) -> list[tuple[str, Event]]:
    """Appends a copy of each event, in order: same type, ts, service, correlation id, schema
    and payload, but a new event id and ``payload["replay_of"]`` naming the original (the first
    original, when replaying a replay). Returns the copies with their stream ids."""
    copies = [
        dataclasses.replace(
            event,
            event_id=str(uuid.uuid4()),
            payload={**event.payload, "replay_of": event.replay_of or event.event_id},
        )
        for event in events
    ]
    return list(zip(publish_many(copies, client=client), copies, strict=True))
