"""analytics reads every event through its own consumer group, ``analytics``."""

from __future__ import annotations

import dataclasses
import socket

from django.conf import settings
from django.db import transaction

from trading.analytics import metrics
from trading.analytics.learning import record_learning
from trading.events.consumer import StreamConsumer
from trading.events.envelope import Event
from trading.store import redis_client, rkey

GROUP = "analytics"
LOCK_SECONDS = 60


def handle_event(event: Event) -> None:
    transaction.on_commit(lambda: metrics.EVENTS_RECEIVED.inc(type=event.type))
    if event.type == "position.closed" and event.replay_of is None:
        record_learning(int(event.payload["position_id"]))


def drain_events() -> dict:
    """Drains the group once; one drain at a time across every analytics worker."""
    lock = redis_client().lock(rkey("lock", "drain", GROUP), timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        return {"skipped": "another drain is running"}
    try:
        consumer = StreamConsumer(
            GROUP,
            socket.gethostname(),
            handle_event,
            max_deliveries=settings.EVENT_MAX_DELIVERIES,
        )
        return dataclasses.asdict(consumer.drain())
    finally:
        lock.release()
