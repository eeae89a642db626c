"""The one way workers reach the browser: published events, sent to the dashboard's group on
the channel layer. Best effort: the event log is the record, a dashboard that missed a message
resynchronises from a snapshot.

Each process keeps one event loop in a background thread for the sends, so a publish neither
waits for the dashboard nor pays for a new loop and a new Redis connection every time; the
channel layer's connection pool lives on that loop. A forked child starts its own."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TypedDict

from channels.layers import get_channel_layer

from trading.events.envelope import Event

logger = logging.getLogger(__name__)

DASHBOARD_GROUP = "dashboard"

_lock = threading.Lock()
_loop: dict[str, object] = {"pid": None, "loop": None}


class EventsPublished(TypedDict):
    """The channel-layer message; its ``type`` names the consumer's handler."""

    type: str  # "events.published"
    events: list[dict]


def _sending_loop() -> asyncio.AbstractEventLoop:
    with _lock:
        if _loop["pid"] != os.getpid():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="dashboard-broadcast", daemon=True
            )
            thread.start()
            _loop.update(pid=os.getpid(), loop=loop)
        return _loop["loop"]  # type: ignore[return-value]


def _report(future: Future) -> None:
    if future.exception() is not None:
        logger.warning("could not broadcast to the dashboard: %s", future.exception())


def broadcast(events: Sequence[Event]) -> Future | None:
    """Queues the events for the dashboard's group; returns the send's future (for tests)."""
    if not events:
        return None
    message: EventsPublished = {
        "type": "events.published",
        "events": [event.as_json() for event in events],
    }
    try:
        layer = get_channel_layer()
        future = asyncio.run_coroutine_threadsafe(
            layer.group_send(DASHBOARD_GROUP, message), _sending_loop()
        )
    except Exception:  # the dashboard must never break the flow it shows
        logger.warning("could not broadcast %d events to the dashboard", len(events), exc_info=True)
        return None
    future.add_done_callback(_report)
    return future
