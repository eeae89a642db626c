"""exec-risk reads the event log through its own consumer group, ``exec-risk``."""

from __future__ import annotations

import dataclasses
import socket

from django.conf import settings

from trading.events.consumer import StreamConsumer
from trading.events.envelope import Event
from trading.execution import services
from trading.marketdata.bars import Bar
from trading.store import redis_client, rkey

GROUP = "exec-risk"
LOCK_SECONDS = 60


def handle_event(event: Event) -> None:
    if event.type == "market.bar":
        services.on_bar(Bar.from_payload(event.payload))


def drain_bars() -> dict:
    """Drains the group once; a drain already running elsewhere makes this one a no-op, so bars
    are handled one at a time and in order."""
    client = redis_client()
    lock = client.lock(rkey("lock", "drain", GROUP), timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire(blocking=False):
        return {"skipped": "another drain is running"}
    try:
        consumer = StreamConsumer(
            GROUP,
            # One name per host: drains are serialised, and names never pile up in the group.
            socket.gethostname(),
            handle_event,
            types={"market.bar"},
            max_deliveries=settings.EVENT_MAX_DELIVERIES,
            # Bars from before exec-risk first ran are history, not something to act on.
            start="$",
        )
        return dataclasses.asdict(consumer.drain())
    finally:
        lock.release()
