"""Consumer groups over the event log: at-least-once delivery, exactly-once effects.

A consumer group (one per kind of work, e.g. "portfolio") shares the log among its consumers
(one per process, e.g. "portfolio@host-a-1234"): Redis hands each entry to one consumer of the
group, which keeps it in the group's pending list until it is acknowledged.

What a ``StreamConsumer`` guarantees, and what it asks of the handler:

* **Acknowledged only after the work is committed.** For each event the consumer opens a
  database transaction, records ``ProcessedEvent(consumer=group, event_id)``, runs the handler
  and commits; only then does it ``XACK``. A crash anywhere before the ``XACK`` leaves the entry
  pending, so it is delivered again: delivery is at least once.
* **Effects happen once.** The ``ProcessedEvent`` row is written in the handler's transaction
  and is unique per (group, event_id): a redelivered event whose work was committed finds the
  row and is skipped (and acknowledged); one whose work rolled back finds none and is done
  again. Two consumers racing on the same event serialise on the row; the second skips. This
  covers the handler's writes to the default database only: anything else it does (publishing
  events, calling an exchange, sending mail) may happen again on redelivery, so it should be
  deferred with ``transaction.on_commit`` and be idempotent itself.
* **Failures are retried, with back-off, then dead-lettered.** A handler exception rolls the
  transaction back, is logged with the event id and correlation id, and leaves the entry
  pending. Entries pending longer than ``reclaim_idle_ms`` (whichever consumer holds them, a
  dead one or this one after a failure) are claimed with ``XAUTOCLAIM`` by the next consumer of
  the group that looks, which runs them again; so ``reclaim_idle_ms`` is both the time a dead
  consumer's entries wait and the pause between retries. When the delivery that fails is the
  ``max_deliveries``-th, the entry is copied to the dead-letter stream with the error, the group
  and the consumer (``dead_*`` fields beside the original ones) and acknowledged. An entry
  delivered more than ``max_deliveries`` times without an outcome (the consumer died while
  handling it, each time) is dead-lettered without running the handler again.
* **Malformed entries** (not an envelope, see ``Event.from_fields``) go straight to the
  dead-letter stream: retrying cannot help.
* **Other types** than the consumer's ``types`` are acknowledged without work.
* Entries trimmed from the stream (``MAXLEN``) while pending are dropped from the pending list.

Order: a group sees entries in log order, but retries come later than the entries after them,
and two consumers of one group run concurrently; handlers must not rely on strict ordering.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import redis
from django.db import IntegrityError, close_old_connections, transaction

from trading.events.envelope import Event, MalformedEvent
from trading.events.log import dead_letter_stream, events_stream, maxlen
from trading.models import ProcessedEvent
from trading.store import redis_client, rkey

logger = logging.getLogger(__name__)

Handler = Callable[[Event], None]
Entry = tuple[str, Mapping[str, str] | None]

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
            for stream_id, fields in entries:
                result.count(self._process(stream_id, fields, deliveries=1))
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
                for stream_id, fields in self._read_new(self.batch, block_ms=block_ms):
                    result.count(self._process(stream_id, fields, deliveries=1))
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
            for stream_id, fields in claimed:
                outcome = self._process(stream_id, fields, deliveries.get(stream_id, 1))
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

    def _ack(self, stream_id: str) -> None:
        self.client.xack(self.stream, self.group, stream_id)

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

    # --- One entry ----------------------------------------------------------------------------

    def _process(
        self, stream_id: str, fields: Mapping[str, str] | None, deliveries: int
    ) -> Outcome:
        if not fields:
            self._ack(stream_id)  # trimmed from the stream while pending: nothing left to do
            return Outcome.GONE
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
            self._ack(stream_id)
            return Outcome.IGNORED

        log = {
            "event_id": event.event_id,
            "correlation_id": event.correlation_id,
            "event_type": event.type,
            "stream_id": stream_id,
            "group": self.group,
            "consumer": self.name,
            "deliveries": deliveries,
        }
        if deliveries > self.max_deliveries:
            error = (
                f"delivered {deliveries} times without finishing "
                f"(max_deliveries={self.max_deliveries}): its consumers died while handling it"
            )
            logger.error("event %s dead-lettered: %s", event.event_id, error, extra=log)
            self._dead_letter(stream_id, fields, error, deliveries)
            return Outcome.DEAD_LETTERED
        try:
            with transaction.atomic():
                first_time = self._mark_processed(event)
                if first_time:
                    self.handler(event)
        except Exception as error:
            logger.exception(
                "event %s (%s, correlation %s) failed in %s/%s, delivery %d of %d",
                event.event_id,
                event.type,
                event.correlation_id or "-",
                self.group,
                self.name,
                deliveries,
                self.max_deliveries,
                extra=log,
            )
            if deliveries >= self.max_deliveries:
                self._dead_letter(stream_id, fields, f"{type(error).__name__}: {error}", deliveries)
                return Outcome.DEAD_LETTERED
            return Outcome.FAILED
        self._ack(stream_id)
        return Outcome.HANDLED if first_time else Outcome.DUPLICATE

    def _mark_processed(self, event: Event) -> bool:
        """Records the event as processed by this group; False if it already was. In its own
        savepoint, so a duplicate leaves the surrounding transaction usable."""
        try:
            with transaction.atomic():
                ProcessedEvent.objects.create(consumer=self.group, event_id=event.event_id)
        except IntegrityError:
            return False
        return True


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


DRAIN_LOCK_SECONDS = 60


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
    one reads to the end). The consumer is named after the host, so names never pile up."""
    from django.conf import settings

    lock = redis_client().lock(
        rkey("lock", "drain", group), timeout=DRAIN_LOCK_SECONDS, blocking=False
    )
    if not lock.acquire(blocking=False):
        return {"skipped": "another drain is running"}
    try:
        consumer = StreamConsumer(
            group,
            socket.gethostname(),
            handler,
            types=types,
            max_deliveries=max_deliveries or settings.EVENT_MAX_DELIVERIES,
            start=start,
        )
        return dataclasses.asdict(consumer.drain())
    finally:
        lock.release()
