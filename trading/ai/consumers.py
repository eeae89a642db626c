"""ai reads closed bars through its own consumer group, ``ai``."""

from __future__ import annotations

import dataclasses
import socket

from django.conf import settings

from trading.ai.services import generate_signal
from trading.events.consumer import StreamConsumer
from trading.events.envelope import Event
from trading.store import redis_client, rkey

GROUP = "ai"
LOCK_SECONDS = 60


def handle_event(event: Event) -> None:
    if event.type == "market.bar" and event.replay_of is None:
        generate_signal(event)


def drain_bars() -> dict:
    """Drains the group once; one drain at a time across every ai worker, so each symbol's bars
    are handled in order."""
    lock = redis_client().lock(rkey("lock", "drain", GROUP), timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        return {"skipped": "another drain is running"}
    try:
        consumer = StreamConsumer(
            GROUP,
            socket.gethostname(),
            handle_event,
            types={"market.bar"},
            max_deliveries=settings.EVENT_MAX_DELIVERIES,
            # A signal on an old bar would trade on stale prices: start with what comes next.
            start="$",
        )
        return dataclasses.asdict(consumer.drain())
    finally:
        lock.release()
