"""The transactional outbox: events are rows written in the transaction of the change they
describe, and a relay appends them to the event log (``trading.events.log``).

So a change that rolled back has no event, and a change that committed gets its event even when
Redis is down at that moment: the row waits, and is published when Redis answers again.

``record(events, then=...)`` writes the rows (one INSERT) inside the caller's transaction and
arranges, once it commits, a best-effort relay right away (the fast path: Redis errors are
logged and swallowed, the caller's work is done). Whatever that leaves, the relay loop
(``manage.py relay_events``) publishes.

What the relay guarantees:

* **In commit order per correlation id.** One relay at a time, across processes and hosts (a
  Redis lock), publishing rows in id order. The changes of one trade are causally ordered (each
  transaction of a signal's story starts after the previous one committed), so their ids are
  in commit order. A lock that expired under a stalled relay is noticed when that relay next
  publishes (the publishing script checks it still holds it) and that relay stops.
* **Nothing waits for the loop when Redis answers.** A fast path that finds the lock taken
  raises a flag; the holder looks for the flag (atomically with letting go of the lock) and
  reads again, so rows committed while it ran are published by it.
* **At least once, and once in the log.** A row is marked published only after its event is
  in the log and its hand-off was sent; a relay that dies in between publishes it again with the
  same ``event_id``. The publishing script remembers the ids it appended for ``DEDUPE_SECONDS``
  and skips those, so a republished row is not appended twice unless the database stayed
  unwritable that long after the append (then consumers, idempotent by ``event_id``, skip it).
* **Hand-offs after the event.** ``then`` names a Celery task (by name: enqueueing is not
  importing) that the relay sends once the event is in the log: the consumer that acts on it
  (``process_signal`` for a new signal) or a nudge to drain the log. Sent again with the row, so
  the task must be idempotent; a hand-off with a ``task_id`` keeps it across resends.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone

from trading.events.broadcast import broadcast
from trading.events.envelope import Event
from trading.events.log import EVENTS_PUBLISHED, events_stream, maxlen
from trading.models import OutboxEvent
from trading.observability.services import SERVICES
from trading.store import rkey

logger = logging.getLogger(__name__)

# Rows one publishing round trip carries.
BATCH = 200
# The fast path publishes at most this many rows (a backlog after an outage is the loop's).
FAST_PATH_ROWS = 1000
# The relay lock's life; each publish renews it, so only a stalled or dead relay loses it.
LOCK_SECONDS = 10
# How long the log remembers which event ids it appended (see the module docstring).
DEDUPE_SECONDS = 600
# The fast path's Redis calls give up after this long: a request must not hang on Redis.
FAST_PATH_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Handoff:
    """A Celery task sent, by name, once the event that carries it is in the log."""

    task: str
    args: tuple = ()
    expires: float | None = None
    task_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "args": list(self.args),
            "expires": self.expires,
            "task_id": self.task_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Handoff:
        return cls(data["task"], tuple(data.get("args") or ()), data.get("expires"),
                   data.get("task_id"))  # fmt: skip


# analytics learns from what exec-risk did: told to read the log once those events are in it.
ANALYTICS_NUDGE = Handoff("trading.analytics.tasks.drain_events", expires=30)


def record(events: Iterable[Event], *, then: Handoff | None = None) -> list[OutboxEvent]:
    """Writes the events to the outbox, in order, in the current transaction (or on their own
    when there is none), ``then`` riding on the last of them; they are relayed once it commits."""
    events = list(events)
    if not events:
        return []
    now = timezone.now()
    rows = [
        OutboxEvent(
            event_id=event.event_id,
            type=event.type,
            ts=event.ts,
            service=event.service,
            correlation_id=event.correlation_id,
            schema=event.schema,
            payload=event.payload,
            created_at=now,
        )
        for event in events
    ]
    if then is not None:
        rows[-1].handoff = then.as_json()
    OutboxEvent.objects.bulk_create(rows)
    _relay_on_commit()
    return rows


def _relay_on_commit() -> None:
    """One fast-path relay per transaction, however many times it records events. A callback
    registered under a savepoint that rolls back goes with it, so the next record registers
    again."""
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(
        callback is relay_now for _sids, callback, _robust in connection.run_on_commit
    ):
        return
    transaction.on_commit(relay_now, robust=True)


def relay_now() -> None:
    """The fast path: publishes what is waiting, now; never raises (the loop retries)."""
    try:
        relay(client=_fast_client(settings.REDIS_URL), max_rows=FAST_PATH_ROWS)
    except Exception as error:
        logger.warning("outbox: relay after commit failed, the relay loop will retry: %s", error)


@functools.cache
def _fast_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=FAST_PATH_TIMEOUT_SECONDS,
        socket_connect_timeout=FAST_PATH_TIMEOUT_SECONDS,
        health_check_interval=30,
    )


def _client() -> redis.Redis:
    from trading.store import redis_client

    return redis_client()


# --- the relay --------------------------------------------------------------------------------


class LostLock(Exception):
    """The relay lock expired under this relay and another may hold it: this one stops."""


def _lock_key() -> str:
    return rkey("outbox", "lock")


def _flag_key() -> str:
    return rkey("outbox", "more")


def _sent_key() -> str:
    return rkey("outbox", "sent")


# Takes the lock, or raises the flag for its holder: atomically, so that a holder letting go
# either sees the flag or leaves the lock free for this caller.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
return 0
"""

# Lets go of the lock unless the flag is up (then keeps it, renewed, and takes the flag down):
# 1 released, 0 kept for another round, -1 not held.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if ARGV[3] == '1' and redis.call('DEL', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
redis.call('DEL', KEYS[1])
return 1
"""

# Appends the events not appended within the dedupe window, counts them, and renews the lock;
# returns each event's stream id ('' when it was appended already), or -1 if the lock is not
# held. ARGV: token, lock ms, maxlen, now ms, dedupe ms, count, then per event: event id,
# counter key, counter field ('' for none), number of fields, the fields.
_PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local now = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[5]))
local out = {}
local i = 7
for n = 1, tonumber(ARGV[6]) do
  local id, key, field, count = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local fields = {}
  for j = 1, count do fields[j] = ARGV[i + 3 + j] end
  i = i + 4 + count
  if redis.call('ZSCORE', KEYS[3], id) then
    out[n] = ''
  else
    out[n] = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(fields))
    redis.call('ZADD', KEYS[3], now, id)
    if key ~= '' then redis.call('HINCRBYFLOAT', key, field, 1) end
  end
end
return out
"""


def relay(*, client: redis.Redis | None = None, max_rows: int | None = None) -> int:
    """Publishes the waiting rows in id order, with their hand-offs, and marks them; returns how
    many it published. Returns 0 at once when another relay holds the lock (it will publish
    them). Stops after about ``max_rows`` rows, leaving the rest to the next relay. Raises on
    Redis or database errors, the rows not marked then waiting for the next relay."""
    client = client or _client()
    token = uuid.uuid4().hex
    lock_ms = LOCK_SECONDS * 1000
    if not client.eval(_ACQUIRE, 2, _lock_key(), _flag_key(), token, lock_ms):
        return 0
    published = 0
    try:
        while True:
            waiting = OutboxEvent.objects.filter(published_at__isnull=True).order_by("id")
            rows = list(waiting[:BATCH])
            if rows:
                _publish(client, token, rows)
                published += len(rows)
            more = len(rows) == BATCH and (max_rows is None or published < max_rows)
            if more:
                continue
            # The flag only matters when this relay could take its rows: not once past max_rows.
            look = "0" if len(rows) == BATCH else "1"
            if client.eval(_RELEASE, 2, _lock_key(), _flag_key(), token, lock_ms, look) != 0:
                return published
    except BaseException:
        try:
            client.eval(_RELEASE, 2, _lock_key(), _flag_key(), token, lock_ms, "0")
        except redis.RedisError:
            pass  # it expires by itself
        raise


def _publish(client: redis.Redis, token: str, rows: list[OutboxEvent]) -> None:
    events = [as_event(row) for row in rows]
    args: list[Any] = [token, LOCK_SECONDS * 1000, maxlen(), int(time.time() * 1000),
                       DEDUPE_SECONDS * 1000, len(events)]  # fmt: skip
    for event in events:
        key, field = _counter(event)
        fields = [part for pair in event.to_fields().items() for part in pair]
        args += [event.event_id, key, field, len(fields), *fields]
    answer = client.eval(_PUBLISH, 3, _lock_key(), events_stream(), _sent_key(), *args)
    if answer == -1:
        raise LostLock("the outbox relay lock expired while this relay held it")
    _send_handoffs(rows)
    OutboxEvent.objects.filter(pk__in=[row.pk for row in rows]).update(published_at=timezone.now())
    appended = [event for event, stream_id in zip(events, answer, strict=True) if stream_id]
    broadcast(appended)


def as_event(row: OutboxEvent) -> Event:
    return Event(
        event_id=str(row.event_id),
        type=row.type,
        ts=row.ts,
        service=row.service,
        correlation_id=row.correlation_id,
        schema=row.schema,
        payload=row.payload,
    )


class _Capture:
    """Stands in for a Redis client to learn which hash field a counter increments."""

    def hincrbyfloat(self, key: str, field: str, amount: float) -> None:
        self.key, self.field = key, field


def _counter(event: Event) -> tuple[str, str]:
    """The hash and field of ``events_published_total`` for the event ('' for none)."""
    if event.service not in SERVICES:
        return "", ""
    capture = _Capture()
    EVENTS_PUBLISHED[event.service].inc(1, client=capture, type=event.type)  # type: ignore[arg-type]
    return capture.key, capture.field


def _send_handoffs(rows: Sequence[OutboxEvent]) -> None:
    """Each distinct hand-off of the rows once, in row order (a batch's nudges coalesce)."""
    from controlpanel.celery import app

    seen = set()
    for row in rows:
        if not row.handoff:
            continue
        handoff = Handoff.from_json(row.handoff)
        if handoff in seen:
            continue
        seen.add(handoff)
        options: dict[str, Any] = {}
        if handoff.expires is not None:
            options["expires"] = handoff.expires
        if handoff.task_id is not None:
            options["task_id"] = handoff.task_id
        app.send_task(handoff.task, args=list(handoff.args), **options)


# --- the backlog ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    rows: int
    oldest_age_seconds: float


def backlog(now: float | None = None) -> Backlog:
    """How many rows wait for the relay, and how long the oldest has waited (0 when none)."""
    found = OutboxEvent.objects.filter(published_at__isnull=True).aggregate(
        rows=Count("id"), oldest=Min("created_at")
    )
    if not found["rows"]:
        return Backlog(0, 0.0)
    now = time.time() if now is None else now
    return Backlog(found["rows"], max(0.0, now - found["oldest"].timestamp()))


def prune_published(older_than: timedelta = timedelta(days=1), limit: int = 10_000) -> int:
    """Deletes up to ``limit`` rows published more than ``older_than`` ago; returns how many."""
    cutoff = timezone.now() - older_than
    ids = list(
        OutboxEvent.objects.filter(published_at__lt=cutoff)
        .order_by("published_at")
        .values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return 0
    deleted, _ = OutboxEvent.objects.filter(pk__in=ids).delete()
    return deleted
