"""The one way workers reach the browser: published events, sent to the dashboard's group on
the channel layer. Best effort: the event log is the record, a dashboard that missed a message
resynchronises from a snapshot.

Each process keeps one event loop in a background thread for the sends, so a publish neither
waits for the dashboard nor pays for a new loop and a new Redis connection every time; the
channel layer's connection pool lives on that loop. A forked child starts its own. The events a
process publishes within ``COALESCE_SECONDS`` of each other go out as one message (a signal's
order, fill and position events, a burst), which spares a group send each.

**The state version.** Every message carries the dashboard state's version (``StateVersion``):
a counter in Redis, under the channel layer's prefix, that each send increments (``INCR``, atomic
across producers) once the change it describes is visible, and the epoch, the ``run_id`` of the
Redis server that counted it. A restarted Redis has a new ``run_id``, so a counter that lost its
last increments with the AOF's last second still reads as new, never as an old version. A
consumer that saw every version up to ``n`` shows every change up to ``n``; one that reads a
higher version in Redis (``read_version``) than it ever received has lost a message, and
resynchronises (docs/dashboard-protocol.md).

**Reconnecting.** channels_redis keeps a connection pool per event loop and drops nothing on its
own: a Redis restart leaves dead connections in the pool, and the next send on one fails. A send
that fails for want of a connection drops this loop's pool and is tried once more on a fresh
connection, with the version it already took."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import NamedTuple, NotRequired, TypedDict

import redis.exceptions
from channels.layers import get_channel_layer

from trading.events.envelope import Event

logger = logging.getLogger(__name__)

DASHBOARD_GROUP = "dashboard"

# Long enough that a send leaves the steps of the trade it describes first (a signal's way from
# its row to its position takes about 15 ms on a laptop's two cores, and a send costs about
# 0.7 ms of CPU in the middle of it), short beside what a person sees and beside the page's own
# 100 ms between deltas.
COALESCE_SECONDS = 0.02
# How long an exiting process waits for its last dashboard send.
EXIT_WAIT_SECONDS = 2.0

# Errors after which a fresh connection may succeed: the server went away or restarted.
CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

_lock = threading.Lock()
_loop: dict[str, object] = {"pid": None, "loop": None, "sending": None, "thread": None}
# What waits for the next send of this process, and the future that send resolves.
_batch: dict[str, object] = {"events": [], "future": None}

# The epoch is the server's run_id, new with every start of the server.
_EPOCH = "local epoch = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')\n"
_BUMP = _EPOCH + "return {epoch, redis.call('INCR', KEYS[1])}"
_READ = _EPOCH + "return {epoch, tonumber(redis.call('GET', KEYS[1]) or '0')}"


class StateVersion(NamedTuple):
    """The version of the dashboard's state: within one epoch, a higher version is newer;
    versions of different epochs do not compare."""

    epoch: str
    version: int


class EventsPublished(TypedDict):
    """The channel-layer message; its ``type`` names the consumer's handler."""

    type: str  # "events.published"
    events: list[dict]
    epoch: NotRequired[str]
    version: NotRequired[int]


def version_key(layer) -> str:
    """The counter lives beside the group it counts broadcasts to, under the layer's prefix."""
    return f"{layer.prefix}:dashboard:version"


def version_connection(layer):
    """The channel layer's Redis connection (of the running loop) that holds the dashboard
    group, and so the version."""
    return layer.connection(layer.consistent_hash(DASHBOARD_GROUP))


def _state(reply) -> StateVersion:
    epoch, version = reply
    return StateVersion(epoch.decode() if isinstance(epoch, bytes) else str(epoch), int(version))


async def bump_version(layer) -> StateVersion:
    """Increments the state version; call once the change is visible to readers."""
    return _state(await version_connection(layer).eval(_BUMP, 1, version_key(layer)))


async def read_version(layer) -> StateVersion:
    """The current state version; a snapshot built after reading it shows every change up to
    that version."""
    return _state(await version_connection(layer).eval(_READ, 1, version_key(layer)))


async def drop_connections(layer) -> None:
    """Closes the running loop's connections of the channel layer, so the next command opens a
    fresh one. Only for a loop whose connections nothing else is using (the sending loop): a
    consumer's receive on one of them would fail."""
    loop_layers = getattr(layer, "_layers", None)  # channels_redis: RedisLoopLayer per loop
    loop_layer = loop_layers.get(asyncio.get_running_loop()) if loop_layers else None
    if loop_layer is not None:
        with contextlib.suppress(Exception):  # closing a dead connection may complain
            await loop_layer.flush()


def _sending_loop() -> asyncio.AbstractEventLoop:
    """The process's sending loop; call with ``_lock`` held."""
    if _loop["pid"] != os.getpid():
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="dashboard-broadcast", daemon=True)
        thread.start()
        _loop.update(pid=os.getpid(), loop=loop, sending=asyncio.Lock(), thread=thread)
        _batch.update(events=[], future=None)  # a forked child's copy is not its to send
        atexit.register(_finish_at_exit, loop, thread)
    return _loop["loop"]  # type: ignore[return-value]


def _finish_at_exit(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """A short-lived process (``manage.py halt_trading``) exits right after it publishes: its
    last send is waited for (briefly), then the loop is stopped, so the interpreter does not
    tear a daemon thread down in the middle of a send (which loses the message and can abort
    the process)."""
    if _loop.get("loop") is not loop:
        return
    with _lock:
        pending = _batch["future"]
    if pending is not None:
        with contextlib.suppress(Exception):
            pending.result(timeout=EXIT_WAIT_SECONDS)  # type: ignore[attr-defined]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=EXIT_WAIT_SECONDS)


def _report(future: Future) -> None:
    if future.exception() is not None:
        logger.warning("could not broadcast to the dashboard: %s", future.exception())


async def _deliver(events: list[dict]) -> StateVersion:
    """Takes a version and sends the events with it; after a connection error, once more on a
    fresh connection (the version taken is kept: taking another would leave a gap)."""
    layer = get_channel_layer()
    state: StateVersion | None = None
    for attempt in (1, 2):
        try:
            if state is None:
                state = await bump_version(layer)
            message: EventsPublished = {
                "type": "events.published",
                "events": events,
                "epoch": state.epoch,
                "version": state.version,
            }
            await layer.group_send(DASHBOARD_GROUP, message)
            return state
        except CONNECTION_ERRORS as error:
            if attempt == 2:
                raise
            logger.info("dashboard broadcast: %s; reconnecting to the channel layer", error)
            await drop_connections(layer)
    raise AssertionError("unreachable")


async def _send_batch() -> None:
    await asyncio.sleep(COALESCE_SECONDS)
    with _lock:
        events, future = _batch["events"], _batch["future"]
        _batch.update(events=[], future=None)
    try:
        # One send at a time: dropping the pool must not cut another send's connection.
        async with _loop["sending"]:  # type: ignore[attr-defined]
            await _deliver(events)  # type: ignore[arg-type]
    except Exception as error:  # the dashboard must never break the flow it shows
        future.set_exception(error)  # type: ignore[attr-defined]
    else:
        future.set_result(len(events))  # type: ignore[attr-defined, arg-type]


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
