"""Consumer groups over the event log: at-least-once delivery, exactly-once effects.

A consumer group (one per kind of work, e.g. "portfolio") shares the log among its consumers
(one per process, e.g. "portfolio@host-a-1234"): Redis hands each entry to one consumer of the
group, which keeps it in the group's pending list until it is acknowledged.

A consumer works in batches: the entries one ``XREADGROUP`` (or ``XAUTOCLAIM``) returns, up to
``batch`` of them, share one database transaction and one ``XACK``.

What a ``StreamConsumer`` guarantees, and what it asks of the handler:

* **Acknowledged only after the work is committed.** For a batch the consumer opens one
  database transaction, looks up which of its events the group has processed already (one
  query), records ``ProcessedEvent(consumer=group, event_id)`` for the others (one bulk
  insert), runs the handler on each of them, each in a savepoint of its own, and commits; only
  then does it ``XACK`` the batch, in one command. A crash anywhere before the ``XACK`` leaves
  the entries pending, so they are delivered again: delivery is at least once.
* **Effects happen once.** The ``ProcessedEvent`` row is written in the handler's transaction
  and is unique per (group, event_id): a redelivered event whose work was committed finds the
  row and is skipped (and acknowledged); one whose work rolled back finds none and is done
  again. Two consumers racing on the same event serialise on the row; the second skips. This
  covers the handler's writes to the default database only: anything else it does (publishing
  events, enqueueing tasks, calling an exchange, sending mail) may happen again, on redelivery
  or when its batch is done again one event at a time (below), so it should be deferred with
  ``transaction.on_commit`` and be idempotent itself.
* **One failure does not cost the batch.** A handler exception rolls back that handler's
  savepoint and the event's ``ProcessedEvent`` row, and discards the ``on_commit`` actions it
  registered; the other events of the batch are committed and acknowledged, and no handler runs
  twice because another one failed. Should the batch's transaction itself fail (its insert
  meets a racing consumer's rows, the database refuses the commit, a savepoint cannot be rolled
  back), it is rolled back whole and its events are processed again one at a time, each in its
  own transaction; the XACK comes after the last of those commits.
* **Failures are retried, with back-off, then dead-lettered.** A handler exception is logged
  with the event id and correlation id, and leaves the entry pending. Entries pending longer
  than ``reclaim_idle_ms`` (whichever consumer holds them, a dead one or this one after a
  failure) are claimed with ``XAUTOCLAIM`` by the next consumer of the group that looks, which
  runs them again; so ``reclaim_idle_ms`` is both the time a dead consumer's entries wait and
  the pause between retries. When the delivery that fails is the ``max_deliveries``-th, the
  entry is copied to the dead-letter stream with the error, the group and the consumer
  (``dead_*`` fields beside the original ones) and acknowledged. An entry delivered more than
  ``max_deliveries`` times without an outcome (the consumer died while handling it, each time)
  is dead-lettered without running the handler again.
* **An on-commit action that raises** does so after the commit: the work stays done, the
  exception is logged, the events are acknowledged, and the actions registered after it are
  lost (use ``on_commit(..., robust=True)`` for one that may fail).
* **Malformed entries** (not an envelope, see ``Event.from_fields``) go straight to the
  dead-letter stream: retrying cannot help.
* **Other types** than the consumer's ``types`` are acknowledged without work.
* Entries trimmed from the stream (``MAXLEN``) while pending are dropped from the pending list.

The handlers of a batch share its transaction: a handler sees the uncommitted work of those
before it, and must not end the transaction itself (no ``atomic(durable=True)``).

Order: a group sees entries in log order, but retries come later than the entries after them,
and two consumers of one group run concurrently; handlers must not rely on strict ordering. An
event id that comes twice in one batch (a producer's retry) is looked at again after the batch.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

import redis
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from trading.events.envelope import Event, MalformedEvent
from trading.events.log import dead_letter_stream, events_stream, maxlen
from trading.models import ProcessedEvent
from trading.store import redis_client, rkey

logger = logging.getLogger(__name__)

Handler = Callable[[Event], None]
Entry = tuple[str, Mapping[str, str] | None]
T = TypeVar("T")

# ProcessedEvent.consumer holds the group name.
MAX_GROUP_LENGTH = 64
# Longest error text kept in a dead-letter entry.
MAX_ERROR_LENGTH = 4000
# run_forever's pause after Redis fails, doubling up to the maximum.
MIN_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


def ensure_group(
    client: redis.Redis, group: str, *, start: str = "0", stream: str | None = None
) -> bool:
    """Creates the consumer group on the event log (and the stream, if need be), reading from
    ``start``: "0" for all retained history, "$" for new events only. Returns False if the group
    already existed, in which case nothing changes (its position is kept)."""
    try:
        client.xgroup_create(stream or events_stream(), group, id=start, mkstream=True)
    except redis.ResponseError as error:
        if str(error).startswith("BUSYGROUP"):
            return False
        raise
    return True


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "skipped_duplicates"
    IGNORED = "ignored"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    GONE = "gone"  # trimmed from the stream while pending


@dataclass
class DrainResult:
    """What a ``drain`` (or ``run_forever``) did; every entry it looked at is counted once in
    handled, skipped_duplicates, ignored, failed or dead_lettered. ``reclaimed`` counts the
    entries among them that were claimed from the pending list (another consumer's, or an
    earlier failure) rather than read new."""

    handled: int = 0
    skipped_duplicates: int = 0
    failed: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    ignored: int = 0

    def count(self, outcome: Outcome) -> None:
        if outcome is not Outcome.GONE:
            setattr(self, outcome.value, getattr(self, outcome.value) + 1)


class StreamConsumer:
    """One consumer of a group; see the module docstring for what it guarantees.

    ``handler(event)`` does the work inside the transaction and raises to fail it. ``types``
    limits the work to those event types (None: every type).
    """

    def __init__(
        self,
        group: str,
        consumer_name: str,
        handler: Handler,
        *,
        types: Iterable[str] | None = None,
        batch: int = 100,
        reclaim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        client: redis.Redis | None = None,
        start: str = "0",
    ) -> None:
        if not group or len(group) > MAX_GROUP_LENGTH:
            raise ValueError(f"a group name has 1 to {MAX_GROUP_LENGTH} characters: {group!r}")
        if not consumer_name:
            raise ValueError("a consumer needs a name")
        if batch < 1 or max_deliveries < 1 or reclaim_idle_ms < 0:
            raise ValueError("batch and max_deliveries must be positive, reclaim_idle_ms >= 0")
        self.group = group
        self.name = consumer_name
        self.handler = handler
        self.types = frozenset([types] if isinstance(types, str) else types) if types else None
        self.batch = batch
        self.reclaim_idle_ms = reclaim_idle_ms
        self.max_deliveries = max_deliveries
        # Keys are fixed when the consumer is made, under the prefix of that moment.
        self.stream = events_stream()
        self.dead_letter_stream = dead_letter_stream()
        self._client = client
        # Where a new group starts: "0" reads the whole log kept, "$" only what comes next.
        self.start = start
        self._group_ready = False

    @property
    def client(self) -> redis.Redis:
        return self._client or redis_client()

    # --- Driving ------------------------------------------------------------------------------

    def drain(self, max_events: int | None = None) -> DrainResult:
        """Handles what is there now and returns: first the entries pending longer than
        ``reclaim_idle_ms``, then new entries, never waiting for more. Stops after
        ``max_events`` entries if given. An entry that fails is left for a later drain (after
        ``reclaim_idle_ms``), not retried in this one."""
        result = DrainResult()
        budget = math.inf if max_events is None else max_events
        budget -= self._reclaim(result, budget)
        while budget > 0:
            entries = self._read_new(int(min(self.batch, budget)), block_ms=None)
            if not entries:
                break
            for outcome in self._process(entries):
                result.count(outcome)
            budget -= len(entries)
        return result

    def run_forever(self, stop_event: threading.Event, block_ms: int = 1000) -> DrainResult:
        """Consumes until ``stop_event`` is set, waiting up to ``block_ms`` for new entries and
        reclaiming idle ones every half ``reclaim_idle_ms`` or so. Survives Redis outages (logs,
        backs off, retries); returns the totals when stopped. For a dedicated process: it
        recycles database connections between batches as a Celery worker does."""
        result = DrainResult()
        reclaim_every = min(max(self.reclaim_idle_ms / 2000, 0.1), 5.0)
        next_reclaim = 0.0
        backoff = MIN_BACKOFF_SECONDS
        while not stop_event.is_set():
            close_old_connections()
            try:
                if time.monotonic() >= next_reclaim:
                    self._reclaim(result, math.inf)
                    next_reclaim = time.monotonic() + reclaim_every
                for outcome in self._process(self._read_new(self.batch, block_ms=block_ms)):
                    result.count(outcome)
            except (redis.ConnectionError, redis.TimeoutError) as error:
                logger.warning(
                    "event consumer %s/%s lost Redis (%s), retrying in %.1fs",
                    self.group,
                    self.name,
                    error,
                    backoff,
                    extra={"group": self.group, "consumer": self.name},
                )
                stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            else:
                backoff = MIN_BACKOFF_SECONDS
        close_old_connections()
        return result

    # --- Redis --------------------------------------------------------------------------------

    def _with_group(self, call: Callable[[], object]) -> object:
        """Runs a group command, creating the group first, and again if it vanished (the stream
        was deleted, or the group destroyed by an operator)."""
        if not self._group_ready:
            ensure_group(self.client, self.group, start=self.start, stream=self.stream)
            self._group_ready = True
        try:
            return call()
        except redis.ResponseError as error:
            if not str(error).startswith("NOGROUP"):
                raise
            ensure_group(self.client, self.group, start=self.start, stream=self.stream)
            return call()

    def _read_new(self, count: int, block_ms: int | None) -> list[Entry]:
        answer = self._with_group(
            lambda: self.client.xreadgroup(
                self.group, self.name, {self.stream: ">"}, count=count, block=block_ms
            )
        )
        return [entry for _stream, entries in answer or [] for entry in entries]

    def _reclaim(self, result: DrainResult, budget: float) -> int:
        """Claims and processes entries idle longer than reclaim_idle_ms, up to ``budget`` of
        them; returns how many it claimed."""
        claimed_total, cursor = 0, "0-0"
        while budget - claimed_total > 0:
            count = int(min(self.batch, budget - claimed_total))
            cursor, claimed, *_deleted = self._with_group(
                lambda cursor=cursor, count=count: self.client.xautoclaim(
                    self.stream, self.group, self.name, self.reclaim_idle_ms, cursor, count=count
                )
            )
            deliveries = self._delivery_counts([stream_id for stream_id, _ in claimed])
            for outcome in self._process(claimed, deliveries):
                result.count(outcome)
                if outcome is not Outcome.GONE:
                    result.reclaimed += 1
            claimed_total += len(claimed)
            if cursor in ("0-0", b"0-0"):
                break
        return claimed_total

    def _delivery_counts(self, stream_ids: list[str]) -> dict[str, int]:
        if not stream_ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for stream_id in stream_ids:
            pipe.xpending_range(self.stream, self.group, stream_id, stream_id, 1)
        return {
            _text(row["message_id"]): int(row["times_delivered"])
            for rows in pipe.execute()
            for row in rows
        }

    def _ack(self, *stream_ids: str) -> None:
        if stream_ids:
            self.client.xack(self.stream, self.group, *stream_ids)

    def _dead_letter(
        self, stream_id: str, fields: Mapping[str, str], error: str, deliveries: int
    ) -> None:
        entry = {_text(k): _text(v) for k, v in fields.items()}
        entry.update(
            dead_error=error[:MAX_ERROR_LENGTH],
            dead_group=self.group,
            dead_consumer=self.name,
            dead_stream_id=_text(stream_id),
            dead_deliveries=str(deliveries),
            dead_at=datetime.now(UTC).isoformat(),
        )
        # Copy and acknowledge together: the entry leaves the pending list only once it is kept.
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.dead_letter_stream, entry, maxlen=maxlen(), approximate=True)
        pipe.xack(self.stream, self.group, stream_id)
        pipe.execute()

    # --- Batches -----------------------------------------------------------------------------

    def _process(
        self, entries: Sequence[Entry], deliveries: Mapping[str, int] | None = None
    ) -> list[Outcome]:
        """Processes the entries of one read as a batch and returns their outcomes, in order.
        ``deliveries`` maps stream ids to their delivery counts (1 when missing: a new read)."""
        outcomes: dict[int, Outcome] = {}
        to_ack: list[str] = []  # acknowledged together, after the batch's commit
        work: list[_Work] = []
        again: list[_Work] = []  # an event id the batch already holds: looked at after it
        event_ids: set[str] = set()
        for index, (stream_id, fields) in enumerate(entries):
            count = deliveries.get(stream_id, 1) if deliveries else 1
            screened = self._screen(index, stream_id, fields, count)
            if isinstance(screened, Outcome):
                outcomes[index] = screened
                if screened in (Outcome.GONE, Outcome.IGNORED):
                    to_ack.append(stream_id)
                continue
            (again if screened.event.event_id in event_ids else work).append(screened)
            event_ids.add(screened.event.event_id)
        for item, outcome in zip(work, self._handle_batch(work), strict=True):
            outcomes[item.index] = outcome
            if outcome in (Outcome.HANDLED, Outcome.DUPLICATE):
                to_ack.append(item.stream_id)
        self._ack(*to_ack)
        for item in again:
            outcomes[item.index] = outcome = self._handle_one(item)
            if outcome in (Outcome.HANDLED, Outcome.DUPLICATE):
                self._ack(item.stream_id)
        return [outcomes[index] for index in range(len(entries))]

    def _screen(
        self, index: int, stream_id: str, fields: Mapping[str, str] | None, deliveries: int
    ) -> _Work | Outcome:
        """The entry at ``index`` of a batch as work for the handler, or the outcome of one
        that is not: GONE and IGNORED entries are left for the caller to acknowledge, malformed
        ones and ones delivered too often are dead-lettered here."""
        if not fields:
            return Outcome.GONE  # trimmed from the stream while pending: nothing left to do
        try:
            event = Event.from_fields(fields)
        except MalformedEvent as error:
            logger.error(
                "malformed event log entry %s dead-lettered by %s/%s: %s",
                stream_id,
                self.group,
                self.name,
                error,
                extra={"stream_id": stream_id, "group": self.group, "consumer": self.name},
            )
            self._dead_letter(stream_id, fields, f"malformed event: {error}", deliveries)
            return Outcome.DEAD_LETTERED
        if self.types is not None and event.type not in self.types:
            return Outcome.IGNORED
        if deliveries > self.max_deliveries:
            error = (
                f"delivered {deliveries} times without finishing "
                f"(max_deliveries={self.max_deliveries}): its consumers died while handling it"
            )
            logger.error(
                "event %s dead-lettered: %s",
                event.event_id,
                error,
                extra=self._log_fields(stream_id, event, deliveries),
            )
            self._dead_letter(stream_id, fields, error, deliveries)
            return Outcome.DEAD_LETTERED
        return _Work(index, stream_id, fields, event, deliveries)

    def _handle_batch(self, work: list[_Work]) -> list[Outcome]:
        """Runs the handler on each event, in one transaction, and returns the outcomes once
        committed (the caller acknowledges), having dead-lettered the failures that were the
        last allowed. If the transaction rolls back, does the events one at a time instead."""
        if not work:
            return []
        try:
            processed, errors = self._commit_batch(work)
        except Exception as error:
            logger.warning(
                "a batch of %d events rolled back in %s/%s (%s: %s), handling them one at a time",
                len(work),
                self.group,
                self.name,
                type(error).__name__,
                error,
                extra={"group": self.group, "consumer": self.name},
            )
            return [self._handle_one(item) for item in work]
        outcomes = []
        for item in work:
            if item.index in errors:
                outcomes.append(self._failed(item, errors[item.index]))
            elif item.event.event_id in processed:
                outcomes.append(Outcome.DUPLICATE)
            else:
                outcomes.append(Outcome.HANDLED)
        return outcomes

    def _commit_batch(self, work: list[_Work]) -> tuple[set[str], dict[int, Exception]]:
        """Runs the handler on each event not yet processed by the group, each in a savepoint,
        and commits the whole. Returns the ids of the events processed already (skipped) and
        the exceptions of the handlers that failed (their work rolled back), by batch index.
        Raises if the transaction rolled back: then nothing of the batch happened."""
        errors: dict[int, Exception] = {}

        def run() -> set[str]:
            processed = _processed_already(self.group, [item.event.event_id for item in work])
            fresh = [item for item in work if item.event.event_id not in processed]
            # Before any handler runs: a consumer racing on one of these events makes this
            # fail (or, on PostgreSQL, wait for it), not the handlers run twice.
            _insert_processed(self.group, [item.event.event_id for item in fresh])
            database = transaction.get_connection()
            with database.cursor() as cursor:
                for item in fresh:
                    sid = f"qt_event_{item.index}"
                    error = _in_savepoint(database, cursor, sid, self.handler, item.event)
                    if error is not None:
                        errors[item.index] = error
            if errors:
                failed = [item.event.event_id for item in fresh if item.index in errors]
                ProcessedEvent.objects.filter(consumer=self.group, event_id__in=failed).delete()
            return processed

        return _atomically(run), errors

    def _handle_one(self, item: _Work) -> Outcome:
        """Runs the handler on one event in a transaction of its own (the caller acknowledges):
        the path of an event the batch could not take."""

        def run() -> bool:
            first_time = self._mark_processed(item.event)
            if first_time:
                self.handler(item.event)
            return first_time

        try:
            first_time = _atomically(run)
        except Exception as error:
            return self._failed(item, error)
        return Outcome.HANDLED if first_time else Outcome.DUPLICATE

    def _failed(self, item: _Work, error: Exception) -> Outcome:
        """Logs a handler's failure (its work rolled back) and dead-letters the event if that
        was its last allowed delivery; else leaves it pending, for a retry."""
        logger.error(
            "event %s (%s, correlation %s) failed in %s/%s, delivery %d of %d",
            item.event.event_id,
            item.event.type,
            item.event.correlation_id or "-",
            self.group,
            self.name,
            item.deliveries,
            self.max_deliveries,
            exc_info=error,
            extra=self._log_fields(item.stream_id, item.event, item.deliveries),
        )
        if item.deliveries >= self.max_deliveries:
            message = f"{type(error).__name__}: {error}"
            self._dead_letter(item.stream_id, item.fields, message, item.deliveries)
            return Outcome.DEAD_LETTERED
        return Outcome.FAILED

    def _log_fields(self, stream_id: str, event: Event, deliveries: int) -> dict:
        return {
            "event_id": event.event_id,
            "correlation_id": event.correlation_id,
            "event_type": event.type,
            "stream_id": stream_id,
            "group": self.group,
            "consumer": self.name,
            "deliveries": deliveries,
        }

    def _mark_processed(self, event: Event) -> bool:
        """Records the event as processed by this group; False if it already was. In its own
        savepoint, so a duplicate leaves the surrounding transaction usable."""
        try:
            with transaction.atomic():
                ProcessedEvent.objects.create(consumer=self.group, event_id=event.event_id)
        except IntegrityError:
            return False
        return True


@dataclass(slots=True)
class _Work:
    """An entry of a batch whose event is the handler's to do; ``index`` is its place in the
    batch."""

    index: int
    stream_id: str
    fields: Mapping[str, str]
    event: Event
    deliveries: int


def _in_savepoint(
    database: BaseDatabaseWrapper, cursor: CursorWrapper, sid: str, handler: Handler, event: Event
) -> Exception | None:
    """Runs the handler inside a savepoint of the current transaction. If it raises, or leaves
    the transaction marked for rollback, rolls back to the savepoint, with the on-commit actions
    registered under it, and returns the exception; else returns None. Raises if the savepoint
    cannot be rolled back: then the transaction cannot go on.

    What a nested ``atomic()`` does, for a tenth of its cost, which was a third of the cost of
    consuming an event: ``atomic()`` opens a cursor for each statement and releases each
    savepoint, where this reuses the batch's cursor and leaves the savepoints to the commit.
    Like ``atomic()``, it puts the savepoint on the connection's stack of savepoint ids, which
    is how Django knows which on-commit actions a rollback to it discards."""
    cursor.execute(database.ops.savepoint_create_sql(sid))
    database.savepoint_ids.append(sid)
    failure: Exception | None = None
    try:
        handler(event)
        if database.get_rollback():
            failure = transaction.TransactionManagementError(
                "the handler left its transaction to roll back"
            )
    except Exception as error:
        failure = error
    finally:
        database.savepoint_ids.pop()
    if failure is not None:
        # As atomic() does: a failed query inside Django's own blocks (a save()) marks the
        # transaction for rollback, which would refuse the very rollback that clears it.
        database.set_rollback(False)
        try:
            database.savepoint_rollback(sid)
        except Exception:
            database.set_rollback(True)
            raise
    return failure


def _processed_already(group: str, event_ids: list[str]) -> set[str]:
    """Which of the events the group has processed already, in one query."""
    rows = ProcessedEvent.objects.filter(consumer=group, event_id__in=event_ids)
    return {str(event_id) for event_id in rows.values_list("event_id", flat=True)}


def _insert_processed(group: str, event_ids: list[str]) -> None:
    """Records the events as processed by the group, in one statement; raises IntegrityError if
    any already is. Plain SQL: ``bulk_create`` costs several times as much a row on SQLite
    (it prepares each field of each object and reads the new ids back), a third of what
    consuming an event costs in all."""
    if not event_ids:
        return
    meta = ProcessedEvent._meta
    fields = [meta.get_field(name) for name in ("consumer", "event_id", "processed_at")]
    group_field, event_field, time_field = fields
    group_value = group_field.get_db_prep_save(group, connection)
    now = time_field.get_db_prep_save(timezone.now(), connection)
    quote = connection.ops.quote_name
    # Only the model's own table and column names go into the text, quoted.
    sql = "INSERT INTO {} ({}) VALUES (%s, %s, %s)".format(  # noqa: S608
        quote(meta.db_table), ", ".join(quote(field.column) for field in fields)
    )
    rows = [(group_value, event_field.get_db_prep_save(i, connection), now) for i in event_ids]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _atomically(work: Callable[[], T]) -> T:
    """Runs ``work`` in a transaction and returns its value once committed. Raises if the
    transaction rolled back (whatever ``work`` raised, or TransactionManagementError if it left
    the transaction marked for rollback). An on-commit action that raises does so after the
    commit: that is logged, not raised, since the work is done."""
    committed = False

    def mark_committed() -> None:
        nonlocal committed
        committed = True

    try:
        with transaction.atomic():
            # Registered first, so it runs first of the on-commit actions.
            transaction.on_commit(mark_committed)
            value = work()
            if transaction.get_rollback():
                raise transaction.TransactionManagementError(
                    "the work left its transaction to roll back"
                )
    except Exception:
        if not committed:
            raise
        logger.exception("an on-commit action failed after its transaction committed")
    return value


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# How long the drain lock outlives a drain that died without releasing it (a SIGKILLed or
# OOM-killed worker): the group's events wait that long after a crash. A live drain renews it.
DRAIN_LOCK_SECONDS = 10


def drain_exclusively(
    group: str,
    handler: Handler,
    *,
    types: Iterable[str] | None = None,
    start: str = "0",
    max_deliveries: int | None = None,
) -> dict:
    """One drain of a service's group at a time across all its workers and hosts, so that its
    events are handled in order: a drain that finds another running returns at once (the running
    one reads to the end). The consumer is named after the host, so names never pile up.

    The lock lives ``DRAIN_LOCK_SECONDS`` and is renewed while the drain runs, so a crashed
    drain blocks the group only that long; and since no other drain runs while it is held, an
    entry pending longer than that is one a dead drain left (or a failure), claimed again then."""
    from django.conf import settings

    # Not thread-local: the renewing thread uses the token the draining thread acquired.
    lock = redis_client().lock(
        rkey("lock", "drain", group), timeout=DRAIN_LOCK_SECONDS, thread_local=False
    )
    if not lock.acquire(blocking=False):
        return {"skipped": "another drain is running"}
    done = threading.Event()

    def renew() -> None:
        while not done.wait(DRAIN_LOCK_SECONDS / 3):
            try:
                lock.reacquire()
            except redis.RedisError:  # LockError too
                return  # lost, or Redis down: the drain goes on, its effects happen once

    renewer = threading.Thread(target=renew, name=f"drain-lock-{group}", daemon=True)
    renewer.start()
    try:
        consumer = StreamConsumer(
            group,
            socket.gethostname(),
            handler,
            types=types,
            max_deliveries=max_deliveries or settings.EVENT_MAX_DELIVERIES,
            reclaim_idle_ms=int(DRAIN_LOCK_SECONDS * 1000),
            start=start,
        )
        return dataclasses.asdict(consumer.drain())
    finally:
        done.set()
        renewer.join()
        try:
            lock.release()
        except redis.RedisError:
            pass  # expired while Redis was unreachable: nothing left to release
