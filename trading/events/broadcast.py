"""The one way workers reach the browser: published events, sent to the dashboard's group on
the channel layer. Best effort: the event log is the record, a dashboard that missed a message
resynchronises from a snapshot.

Each process keeps one event loop in a background thread for the sends, so a publish neither
waits for the dashboard nor pays for a new loop and a new Redis connection every time; the
channel layer's connection pool lives on that loop. A forked child starts its own. The events a
process publishes within ``COALESCE_SECONDS`` of each other go out as one message (a signal's
order, fill and position events, a burst), which spares a group send each."""

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

COALESCE_SECONDS = 0.005

_lock = threading.Lock()
_loop: dict[str, object] = {"pid": None, "loop": None}
# What waits for the next send of this process, and the future that send resolves.
_batch: dict[str, object] = {"events": [], "future": None}


class EventsPublished(TypedDict):
    """The channel-layer message; its ``type`` names the consumer's handler."""

    type: str  # "events.published"
    events: list[dict]


def _sending_loop() -> asyncio.AbstractEventLoop:
    """The process's sending loop; call with ``_lock`` held."""
    if _loop["pid"] != os.getpid():
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="dashboard-broadcast", daemon=True)
        thread.start()
        _loop.update(pid=os.getpid(), loop=loop)
        _batch.update(events=[], future=None)  # a forked child's copy is not its to send
    return _loop["loop"]  # type: ignore[return-value]


def _report(future: Future) -> None:
    if future.exception() is not None:
        logger.warning("could not broadcast to the dashboard: %s", future.exception())


async def _send_batch() -> None:
    await asyncio.sleep(COALESCE_SECONDS)
    with _lock:
        events, future = _batch["events"], _batch["future"]
        _batch.update(events=[], future=None)
    message: EventsPublished = {"type": "events.published", "events": events}
    try:
        await get_channel_layer().group_send(DASHBOARD_GROUP, message)
    except Exception as error:  # the dashboard must never break the flow it shows
        future.set_exception(error)
    else:
        future.set_result(len(events))


def broadcast(events: Sequence[Event]) -> Future | None:
    """Queues the events for the dashboard's group; returns the future of the send that will
    carry them (for tests), which resolves to the number of events that send carried."""
    if not events:
        return None
    rows = [event.as_json() for event in events]
    try:
        with _lock:
            loop = _sending_loop()
            _batch["events"].extend(rows)  # type: ignore[union-attr]
            if _batch["future"] is not None:
                return _batch["future"]  # type: ignore[return-value]
            future: Future = Future()
            future.add_done_callback(_report)
            _batch["future"] = future
        asyncio.run_coroutine_threadsafe(_send_batch(), loop)
    except Exception:
        with _lock:
            _batch.update(events=[], future=None)
        logger.warning("could not broadcast %d events to the dashboard", len(events), exc_info=True)
        return None
    return future
