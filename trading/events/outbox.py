"""The transactional outbox: events are rows written in the transaction of the change they
describe, and a relay appends them to the event log (``trading.events.log``).

So a change that rolled back has no event, and a change that committed gets its event even when
Redis is down at that moment: the row waits, and is published when Redis answers again.

``record(events, then=...)`` writes the rows (one INSERT) inside the caller's transaction and
arranges, once it commits, a best-effort relay of those rows right away (the fast path: Redis
errors are logged and swallowed, the caller's work is done). Whatever that leaves, the relay
loop (``manage.py relay_events``) publishes.

What the relay guarantees:

* **In commit order per correlation id**, without a lock. The changes of one trade are causally
  ordered (each transaction of a signal's story starts after the previous one committed), so
  their ids are in commit order. Every relay publishes, for each correlation id it touches,
  every row of it still unpublished up to its own, in id order, in one atomic script that skips
  the events it appended already. So whichever of two racing relays runs its script first, each
  event of a correlation id is appended after every earlier one. The fast path takes only its
  own correlation ids; the loop takes the oldest rows of all.
* **At least once, and once in the log.** The script remembers the event ids it appended for
  ``DEDUPE_SECONDS`` and skips those, so a republished row is not appended twice unless it
  stayed unmarked that long after the append (then consumers, idempotent by ``event_id``, skip
  it).
* **Hand-offs after the event.** ``then`` names a Celery task (by name: enqueueing is not
  importing) that is sent once the event is in the log: the consumer that acts on it
  (``process_signal`` for a new signal) or a nudge to drain the log. The relay that appended the
  event sends it; the loop sends it again for a row left unmarked, so the task must be
  idempotent; a hand-off with a ``task_id`` keeps it across resends.
* **Marked without a write of its own.** A row is marked published only once its event is in the
  log and its hand-off was sent. The fast path leaves the marking to its process's next
  ``record`` (the UPDATE rides in that transaction, which writes anyway) or, when none comes
  within ``MARK_DELAY_SECONDS``, to one UPDATE of every row waiting in the process: SQLite has
  one writer, and a write of its own per relay waited behind the workers' transactions. The loop
  leaves rows younger than ``LOOP_GRACE_SECONDS`` to their fast path; an older unmarked row (its
  relay died, or Redis was down) it publishes again, sends its hand-off again and marks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgpack
import redis
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from trading import bus
from trading.events.broadcast import broadcast
from trading.events.envelope import FIELDS, Event, _dump
from trading.events.log import EVENTS_PUBLISHED, events_stream, maxlen
from trading.models import OutboxEvent
from trading.observability.services import SERVICES
from trading.store import rkey

logger = logging.getLogger(__name__)

# Rows one publishing round trip of the loop carries.
BATCH = 500
# The fast path publishes at most this many rows (a backlog after an outage is the loop's).
FAST_PATH_ROWS = 1000
# How long the log remembers which event ids it appended (see the module docstring).
DEDUPE_SECONDS = 600
# The fast path's Redis calls give up after this long: a request must not hang on Redis.
FAST_PATH_TIMEOUT_SECONDS = 2.0
# How long published rows wait for their process's next transaction to mark them.
MARK_DELAY_SECONDS = 0.1
# Rows younger than this are their fast path's: the loop would only send their hand-offs again.
LOOP_GRACE_SECONDS = 2.0

# The columns a relay reads, in the order ``_event_of`` takes them.
_COLUMNS = ("pk", "event_id", "type", "ts", "service", "correlation_id", "schema", "payload",
            "handoff")  # fmt: skip


@dataclass(frozen=True)
class Handoff:
    """A Celery task sent, by name, once the event that carries it is in the log."""

    task: str
    args: tuple = ()
    expires: float | None = None
    task_id: str | None = None
    # A nudge nobody waits for: sent without its result, so the sender does not subscribe to it.
    ignore_result: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "args": list(self.args),
            "expires": self.expires,
            "task_id": self.task_id,
            "ignore_result": self.ignore_result,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Handoff:
        return cls(data["task"], tuple(data.get("args") or ()), data.get("expires"),
                   data.get("task_id"), bool(data.get("ignore_result")))  # fmt: skip


# analytics learns from what exec-risk did: told to read the log once those events are in it.
ANALYTICS_NUDGE = Handoff(bus.ANALYTICS_DRAIN_EVENTS, expires=30, ignore_result=True)


class _Row(NamedTuple):
    """A row as a relay needs it: its id, its event and its hand-off."""

    pk: int
    event: Event
    handoff: dict[str, Any] | None


def record(
    events: Iterable[Event], *, then: Handoff | None = None, with_next: bool = False
) -> list[OutboxEvent]:
    """Writes the events to the outbox, in order, in the current transaction (or in one of their
    own when there is none), ``then`` riding on the last of them; they are relayed once it
    commits. Rows this process published since its last transaction are marked in it.

    ``with_next`` is for a step whose story this process goes on with at once (an order placed
    right after it is saved): its rows are relayed by the relay of the next commit of the same
    correlation id, saving a round of the fast path on the way, or after
    ``MARK_DELAY_SECONDS`` when none comes."""
    events = list(events)
    if not events:
        return []
    now = timezone.now()
    rows = outbox_rows(events, then=then, now=now)
    # Inside the caller's transaction, without a savepoint: the rows stand or fall with it.
    with transaction.atomic(savepoint=False):
        OutboxEvent.objects.bulk_create(rows)
        _marks.mark_in_transaction(now)
        recorded = [_Row(r.pk, event, r.handoff) for r, event in zip(rows, events, strict=True)]
        if with_next:
            transaction.on_commit(functools.partial(_marks.hold, recorded))
        else:
            _relay_on_commit(recorded)
    return rows


def outbox_rows(
    events: Sequence[Event], *, then: Handoff | None = None, now: datetime | None = None
) -> list[OutboxEvent]:
    """The unsaved rows of the events, ``then`` riding on the last (for ``record``, and for a
    benchmark that builds a backlog)."""
    now = now or timezone.now()
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
    if then is not None and rows:
        rows[-1].handoff = then.as_json()
    return rows


class _FastPath:
    """The relay after commit of the rows one transaction recorded, however many times it
    recorded events. A callback registered under a savepoint that rolls back goes with it, so
    the next record registers again; rows of a savepoint rolled back under an earlier callback
    are not in the database when it runs, and it checks each against the database."""

    def __init__(self) -> None:
        self.rows: list[_Row] = []

    def __call__(self) -> None:
        relay_now(self.rows)


def _relay_on_commit(rows: list[_Row]) -> None:
    current = transaction.get_connection()
    for _sids, callback, _robust in current.run_on_commit:
        if isinstance(callback, _FastPath):
            callback.rows.extend(rows)
            return
    callback = _FastPath()
    callback.rows.extend(rows)
    transaction.on_commit(callback, robust=True)


def relay_now(rows: Sequence[_Row]) -> None:
    """The fast path: publishes the rows just committed, and the rows of their correlation ids
    still waiting before them; never raises an Exception (the loop retries)."""
    try:
        _relay_fast(_fast_client(settings.REDIS_URL), rows)
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


def _sent_key() -> str:
    return rkey("outbox", "sent")


# Appends the events not appended within the dedupe window and counts them; returns a string
# with a character per event, 1 appended or 0 appended already, or '?' without appending when
# one of the events that must come before them is not in the log yet. ARGV: maxlen, now ms,
# dedupe ms, the stream entry's field names, the events (per event its id, its counter's key
# and field, '' for none, then its fields' values), and the ids of the events that must be in
# the log already, the last three in MessagePack: one argument per value made packing the
# command the relay's largest cost, and JSON spent as long escaping and reading the payloads.
_PUBLISH = """
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[3]))
for _, id in ipairs(cmsgpack.unpack(ARGV[6])) do
  if not redis.call('ZSCORE', KEYS[2], id) then return '?' end
end
local names = cmsgpack.unpack(ARGV[4])
local entry = {}
local out, counts = {}, {}
for n, event in ipairs(cmsgpack.unpack(ARGV[5])) do
  local id, key, field = event[1], event[2], event[3]
  if redis.call('ZSCORE', KEYS[2], id) then
    out[n] = '0'
  else
    for j, name in ipairs(names) do
      entry[2 * j - 1], entry[2 * j] = name, event[3 + j]
    end
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(entry))
    out[n] = '1'
    redis.call('ZADD', KEYS[2], now, id)
    if key ~= '' then
      local at = key .. '\\n' .. field
      counts[at] = (counts[at] or 0) + 1
    end
  end
end
for at, count in pairs(counts) do
  local cut = string.find(at, '\\n', 1, true)
  redis.call('HINCRBYFLOAT', string.sub(at, 1, cut - 1), string.sub(at, cut + 1), count)
end
return table.concat(out)
"""


def _relay_fast(client: redis.Redis, recorded: Sequence[_Row]) -> None:
    """Publishes the rows recorded, after every row of their correlation ids still waiting
    before them; sends the hand-offs of the rows it appended; leaves the marking to
    ``_marks``."""
    if not recorded:
        return
    correlation_ids = {row.event.correlation_id for row in recorded}
    held = _marks.take_held(correlation_ids)
    if held:
        recorded = sorted([*held, *recorded], key=lambda row: row.pk)
    mine = {row.pk: row for row in recorded}
    waiting = _waiting(max(mine), correlation_ids)
    if not waiting or len(waiting) > FAST_PATH_ROWS:
        return  # published already, rolled back, or a backlog the loop takes in order
    # A row of this process's is only taken as it is when the database holds that very event
    # (an id of a row rolled back may have been given again).
    theirs = {pk: str(event_id) for pk, event_id in waiting
              if pk not in mine or mine[pk].event.event_id != str(event_id)}  # fmt: skip
    rows = [mine[pk] for pk, _ in waiting if pk not in theirs]
    # The rows waiting before these are other relays' (a transaction of the same correlation id
    # committed just before, its process yet to mark it) or a backlog's. Most often they are in
    # the log already, which the script checks without their contents; if not, they are
    # loaded and published first. Either way they precede this transaction's rows.
    appended = _append(client, rows, before=list(theirs.values())) if rows else None
    if appended is None:
        loaded = _load(OutboxEvent.objects.filter(pk__in=list(theirs)).order_by("pk"))
        rows = loaded + rows
        appended = _append(client, rows)
    # Whoever appends an event sends its hand-off: a row another relay appended is its to hand
    # off and mark (or the loop's, should that relay have died in between).
    _send_handoffs([row for row in rows if row.pk in appended])
    _marks.add([row.pk for row in rows if row.pk in appended or not row.handoff])
    broadcast([row.event for row in rows if row.pk in appended])


def _waiting(top: int, correlation_ids: set[str]) -> list[tuple[int, str]]:
    """The id and event id of each row of these correlation ids waiting up to ``top``, in id
    order, at most ``FAST_PATH_ROWS + 1`` of them. In SQL of its own: the fast path runs it
    after every commit, and building it with the ORM cost more than running it."""
    meta = OutboxEvent._meta
    table, pk = connection.ops.quote_name(meta.db_table), connection.ops.quote_name(meta.pk.column)
    event_id = meta.get_field("event_id")
    marks = ", ".join(["%s"] * len(correlation_ids))
    # Only the table's own names and placeholders are formatted into the statement.
    sql = (
        f"SELECT {pk}, {connection.ops.quote_name(event_id.column)} FROM {table} "  # noqa: S608
        f"WHERE published_at IS NULL "
        f"AND {pk} <= %s AND correlation_id IN ({marks}) ORDER BY {pk} LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [top, *correlation_ids, FAST_PATH_ROWS + 1])
        return [(found, str(event_id.to_python(value))) for found, value in cursor.fetchall()]


def relay(
    *,
    client: redis.Redis | None = None,
    max_rows: int | None = None,
    older_than: float = 0.0,
) -> int:
    """Publishes the waiting rows in id order, sends their hand-offs and marks them; returns how
    many it published. With ``older_than`` (seconds) it takes only the rows up to the newest one
    created that long ago, leaving the younger ones to their fast path. Stops after about
    ``max_rows`` rows, leaving the rest to the next relay. Raises on Redis or database errors,
    the rows not marked then waiting for the next relay."""
    client = client or _client()
    bound = None
    if older_than > 0:
        cutoff = timezone.now() - timedelta(seconds=older_than)
        bound = OutboxEvent.objects.filter(
            published_at__isnull=True, created_at__lt=cutoff
        ).aggregate(bound=Max("pk"))["bound"]
        if bound is None:
            return 0
        # A bound on the id, not the time: each correlation id's rows up to it are all taken.
    published = 0
    rows = _next_rows(0, bound)
    while rows:
        answer = _send_append(client, rows)
        more = len(rows) == BATCH and (max_rows is None or published + len(rows) < max_rows)
        try:
            following = _next_rows(rows[-1].pk, bound) if more else []
        except BaseException:
            with contextlib.suppress(Exception):
                answer()
            raise
        appended = answer()
        _send_handoffs(rows)
        _mark([row.pk for row in rows])
        broadcast([row.event for row in rows if row.pk in appended])
        published += len(rows)
        rows = following
    return published


def _mark(ids: Sequence[int], now: datetime | None = None) -> int:
    """Marks the rows published (those not marked yet); returns how many it marked. In SQL of
    its own: the ORM's handling of a long ``IN`` list cost as much as the rest of a relay."""
    value = connection.ops.adapt_datetimefield_value(now or timezone.now())
    table = connection.ops.quote_name(OutboxEvent._meta.db_table)
    column = connection.ops.quote_name(OutboxEvent._meta.pk.column)
    marked = 0
    with connection.cursor() as cursor:
        for start in range(0, len(ids), BATCH):
            part = ids[start : start + BATCH]
            # Only the table's own names and placeholders are formatted into the statement.
            sql = (
                f"UPDATE {table} SET published_at = %s "  # noqa: S608
                f"WHERE published_at IS NULL AND {column} IN ({', '.join(['%s'] * len(part))})"
            )
            cursor.execute(sql, [value, *part])
            marked += cursor.rowcount
    return marked


def _next_rows(after: int, bound: int | None) -> list[_Row]:
    """The next ``BATCH`` rows waiting after the id ``after`` (up to ``bound``), in id order. In
    SQL of its own, its values read without Django's converters: they cost the relay a third
    of its time."""
    meta = OutboxEvent._meta
    quote = connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in _COLUMNS[1:])
    pk = quote(meta.pk.column)
    up_to = "" if bound is None else f"AND {pk} <= %s "
    # Only the table's own names and placeholders are formatted into the statement.
    sql = (
        f"SELECT {pk}, {columns} FROM {quote(meta.db_table)} "  # noqa: S608
        f"WHERE published_at IS NULL AND {pk} > %s {up_to}ORDER BY {pk} LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [after, *([] if bound is None else [bound]), BATCH])
        found = cursor.fetchall()
    return [
        _row_of(pk_, _uuid_text(event_id), type_, _utc(ts), service, correlation_id, schema,
                _json(payload), _json(handoff))
        for pk_, event_id, type_, ts, service, correlation_id, schema, payload, handoff in found
    ]  # fmt: skip


def _uuid_text(value: Any) -> str:
    if isinstance(value, str) and len(value) == 32:  # SQLite keeps a UUID as its 32 hex digits
        return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    return str(uuid.UUID(str(value)))


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite: the UTC time as text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _load(query) -> list[_Row]:
    return [_row_of(*values) for values in query.values_list(*_COLUMNS)]


def _row_of(pk, event_id, type_, ts, service, correlation_id, schema, payload, handoff) -> _Row:
    # The event was validated when it was recorded and the database gives it back as it was
    # written: built without checking it again, which cost the relay more than reading the row.
    event = object.__new__(Event)
    event.__dict__.update(
        event_id=str(event_id),
        type=type_,
        ts=ts if ts.tzinfo is UTC else ts.astimezone(UTC),
        service=service,
        correlation_id=correlation_id,
        schema=schema,
        payload=payload,
    )
    return _Row(pk, event, handoff)


def _append(client: redis.Redis, rows: Sequence[_Row], before: Sequence[str] = ()) -> Any:
    """Appends the rows' events in one script; returns the ids of the rows it appended (the
    others were appended already), or None, appending nothing, when one of the events
    ``before`` (ids) is not in the log yet."""
    return _appended(rows, client.eval(*_append_command(rows, before)[1:]))


def _send_append(client: redis.Redis, rows: Sequence[_Row]) -> Callable[[], set[int]]:
    """Sends the script that appends the rows' events and returns at once; the function it
    returns waits for the answer (what ``_append`` returns). So the relay reads its next rows
    from the database while Redis appends these."""
    pool = client.connection_pool
    link = pool.get_connection()
    try:
        link.send_command(*_append_command(rows))
    except BaseException:
        link.disconnect()
        pool.release(link)
        raise

    def answer() -> set[int]:
        try:
            return _appended(rows, link.read_response())
        except BaseException:
            link.disconnect()
            raise
        finally:
            pool.release(link)

    return answer


def _append_command(rows: Sequence[_Row], before: Sequence[str] = ()) -> list[Any]:
    events = []
    for row in rows:
        event = row.event
        events.append([event.event_id, *_counter(event.service, event.type), event.event_id,
                       event.type, event.ts.isoformat(), event.service, event.correlation_id,
                       str(event.schema), _dump(event.payload)])  # fmt: skip
    return ["EVAL", _PUBLISH, 2, events_stream(), _sent_key(), maxlen(), int(time.time() * 1000),
            DEDUPE_SECONDS * 1000, _FIELD_NAMES, msgpack.packb(events),
            msgpack.packb(list(before))]  # fmt: skip


def _appended(rows: Sequence[_Row], answer: Any) -> Any:
    flags = answer.decode() if isinstance(answer, bytes) else answer
    if flags == "?":
        return None
    return {row.pk for row, flag in zip(rows, flags, strict=True) if flag == "1"}


_FIELD_NAMES = msgpack.packb(list(FIELDS))


class _Capture:
    """Stands in for a Redis client to learn which hash field a counter increments."""

    def hincrbyfloat(self, key: str, field: str, amount: float) -> None:
        self.key, self.field = key, field


@functools.lru_cache(maxsize=1024)
def _counter(service: str, type_: str) -> tuple[str, str]:
    """The hash and field of ``events_published_total`` for the event ('' for none)."""
    if service not in SERVICES:
        return "", ""
    capture = _Capture()
    EVENTS_PUBLISHED[service].inc(1, client=capture, type=type_)  # type: ignore[arg-type]
    return capture.key, capture.field


def _send_handoffs(rows: Sequence[_Row]) -> None:
    """Each distinct hand-off of the rows once, in row order (a batch's nudges coalesce)."""
    if not any(row.handoff for row in rows):
        return
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
        if handoff.ignore_result:
            options["ignore_result"] = True
        bus.send(handoff.task, *handoff.args, **options)


# --- marking ----------------------------------------------------------------------------------


class _Marks:
    """The rows this process published and has yet to mark. The next ``record`` marks them in
    its transaction; when none comes within ``MARK_DELAY_SECONDS`` a thread of the process
    marks them all in one UPDATE. Should the process die first, the loop publishes them again
    (appended once, hand-offs sent again) and marks them."""

    # A thread that could not mark gives up after this many tries: the loop takes the rows.
    TRIES = 3

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[int] = set()
        # Rows committed with ``with_next``, waiting for their correlation id's next relay, each
        # with the time it began to wait.
        self._held: list[tuple[float, _Row]] = []
        self._wake = threading.Event()
        self._pid: int | None = None

    def add(self, ids: Iterable[int]) -> None:
        ids = set(ids)
        if not ids:
            return
        with self._lock:
            self._start()
            self._ids |= ids
            self._wake.set()

    def hold(self, rows: Sequence[_Row]) -> None:
        with self._lock:
            self._start()
            since = time.monotonic()
            self._held.extend((since, row) for row in rows)
            self._wake.set()

    def take_held(
        self, correlation_ids: set[str] | None = None, *, older_than: float = 0.0
    ) -> list[_Row]:
        """The held rows of these correlation ids (of all with None) that have waited at least
        ``older_than`` seconds; no longer held."""
        with self._lock:
            if self._pid != os.getpid() or not self._held:
                return []
            cutoff = time.monotonic() - older_than
            kept, taken = [], []
            for since, row in self._held:
                if since <= cutoff and (
                    correlation_ids is None or row.event.correlation_id in correlation_ids
                ):
                    taken.append(row)
                else:
                    kept.append((since, row))
            self._held = kept
            return taken

    def _has_held(self) -> bool:
        with self._lock:
            return bool(self._held)

    def _start(self) -> None:
        if self._pid != os.getpid():  # a forked child starts its own thread
            self._ids = set()
            self._held = []
            self._wake = threading.Event()
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="outbox-marks", daemon=True).start()

    def pending(self) -> list[int]:
        with self._lock:
            return sorted(self._ids) if self._pid == os.getpid() else []

    def _discard(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._ids.difference_update(ids)

    def mark_in_transaction(self, now: datetime) -> None:
        """Marks the waiting rows in the caller's transaction; forgets them once it commits
        (rolled back, they wait for the next)."""
        ids = self.pending()
        if ids:
            _mark(ids, now)
            transaction.on_commit(functools.partial(self._discard, ids))

    def flush(self, ids: Iterable[int] | None = None) -> int:
        """Marks the rows waiting (of ``ids`` only, when given), now, in a transaction of its
        own; returns how many."""
        waiting = self.pending()
        if ids is not None:
            waiting = sorted(set(waiting) & set(ids))
        if not waiting:
            return 0
        with transaction.atomic():
            marked = _mark(waiting)
        self._discard(waiting)
        return marked

    def _run(self) -> None:
        wake, failures = self._wake, 0
        while True:
            wake.wait()
            wake.clear()
            # Only the rows no transaction of the process marked in the meantime: a busy
            # process marks every row in its next transaction and this thread writes nothing.
            due = self.pending()
            time.sleep(MARK_DELAY_SECONDS * 2**failures)
            try:
                close_old_connections()
                held = self.take_held(older_than=MARK_DELAY_SECONDS)
                if held:
                    relay_now(held)  # marks what it appends in a round of its own
                if self._has_held():
                    wake.set()  # held since this round began: its turn is the next round
                self.flush(due)
                failures = 0
            except Exception as error:
                failures += 1
                connection.close()
                if failures >= self.TRIES:
                    logger.warning("outbox: could not mark published rows, the relay loop "
                                   "will: %s", error)  # fmt: skip
                    self._discard(due)
                    failures = 0
                else:
                    wake.set()


_marks = _Marks()


def mark_published() -> int:
    """Marks now the rows this process published and has not marked yet; returns how many (the
    relay marks them shortly after by itself: for a process about to exit, and tests)."""
    return _marks.flush()


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
