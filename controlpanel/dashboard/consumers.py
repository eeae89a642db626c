"""The dashboard's websocket: a snapshot on connect, then coalesced deltas stamped with a
sequence number and the state version, and a heartbeat every second (docs/dashboard-protocol.md).

The version a connection reports is the highest one up to which it received every broadcast
(``trading.events.broadcast``): a broadcast lost on the way leaves it behind the version in
Redis, which the heartbeat shows the page, and the page asks for a snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from controlpanel.dashboard import sections
from trading.events.broadcast import (
    CONNECTION_ERRORS,
    DASHBOARD_GROUP,
    EventsPublished,
    StateVersion,
    read_version,
)

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.1  # at most ten deltas a second, however fast events arrive
SERVICES_EVERY_SECONDS = 2.0  # heartbeat ages move on their own: refresh the tiles
# A lost broadcast shows within two heartbeats: the first reads the version it lacks, the next
# one tells the page, which by then should have had it.
HEARTBEAT_SECONDS = 1.0
UNAUTHENTICATED = 4401
# Larger than any message a browser sends here ({"action": "resync"}); refused unread.
MAX_FRAME_CHARS = 4096
ACTIONS = ("resync", "heartbeat")


@database_sync_to_async
def _build(names) -> dict:
    return sections.build(names)


@database_sync_to_async
def _can_operate(user) -> bool:
    return user.has_perm("trading.operate_trading")


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    joined = False

    async def __call__(self, scope, receive, send) -> None:
        # Whatever ends the connection (a close, a dropped socket, an error in a handler), this
        # channel leaves the group: a dead member would still be sent every broadcast.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.leave()

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accepted first so that the browser sees the 4401 close code, not a failed handshake.
            await self.accept()
            await self.close(code=UNAUTHENTICATED)
            return
        self.seq = 0
        # What the page shows: every change up to ``version`` of ``epoch``; the versions
        # received beyond a missing one wait in ``ahead`` until it arrives.
        self.epoch: str | None = None
        self.version = 0
        self.ahead: set[int] = set()
        self.sent_version: StateVersion | None = None
        self.last_read: StateVersion | None = None
        self.dirty: set[str] = set()
        self.pending: list[dict] = []
        self.changed = asyncio.Event()
        self.last_sent = 0.0
        self.joined = True
        await self.channel_layer.group_add(DASHBOARD_GROUP, self.channel_name)
        await self.accept()
        self.user_info = {"username": user.get_username(), "can_operate": await _can_operate(user)}
        await self.send_snapshot()
        self.loops = [
            asyncio.create_task(self.flush_loop()),
            asyncio.create_task(self.services_loop()),
            asyncio.create_task(self.heartbeat_loop()),
        ]

    async def disconnect(self, code: int) -> None:
        await self.leave()

    async def leave(self) -> None:
        for task in getattr(self, "loops", []):
            task.cancel()
        if self.joined:
            self.joined = False
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(DASHBOARD_GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """A frame that is not a JSON object with a known action is answered with an error
        message; the connection stays open and usable."""
        if not getattr(self, "joined", False):
            return  # closed for want of a login; nothing to answer
        if text_data is None:
            await self.refuse("binary frames are not accepted; send JSON text")
            return
        if len(text_data) > MAX_FRAME_CHARS:
            await self.refuse(f"frame longer than {MAX_FRAME_CHARS} characters")
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.refuse('frame is not JSON; send {"action": "resync"}')
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs) -> None:
        if not isinstance(content, dict):
            await self.refuse('expected a JSON object such as {"action": "resync"}')
        elif content.get("action") not in ACTIONS:
            await self.refuse(
                f"unknown action {content.get('action')!r}; known: {', '.join(ACTIONS)}"
            )
        elif content["action"] == "heartbeat":
            await self.send_heartbeat()
        else:
            await self.send_snapshot()

    async def refuse(self, detail: str) -> None:
        await self.send_json({"type": "error", "detail": detail})

    async def read_version(self) -> StateVersion:
        try:
            return await read_version(self.channel_layer)
        except CONNECTION_ERRORS:
            # redis-py closed the dead connection; the pool opens a fresh one. The pool is
            # shared with every consumer's receive on this loop, so it is not dropped.
            return await read_version(self.channel_layer)

    async def send_snapshot(self) -> None:
        self.dirty.clear()
        self.pending.clear()
        # Read before the build: every change up to this version is visible to it.
        state = await self.read_version()
        built = await _build(list(sections.BUILDERS))
        self.last_read = state
        if state.epoch != self.epoch or state.version < self.version:
            self.ahead.clear()  # another server, or a counter started again: none of it counts
        self.epoch, self.version = state
        self.advance()
        self.sent_version = StateVersion(self.epoch, self.version)
        # The number is taken after the build, so no delta sent meanwhile can carry a later one.
        self.seq += 1
        await self.send_json(
            {
                "type": "snapshot",
                "seq": self.seq,
                "epoch": self.epoch,
                "version": self.version,
                "user": self.user_info,
                "sections": built,
            }
        )

    async def send_heartbeat(self) -> None:
        """Tells the page the version it should show by now: the one read a heartbeat ago,
        which every broadcast had time to deliver. A Redis that restarted or counts from
        lower than this connection received resynchronises at once."""
        try:
            state = await self.read_version()
        except CONNECTION_ERRORS as error:
            logger.info("dashboard heartbeat: cannot read the state version: %s", error)
            return
        if state.epoch != self.epoch or state.version < self.version:
            await self.send_snapshot()
            return
        settled = self.last_read if self.last_read and self.last_read.epoch == state.epoch else None
        self.last_read = state
        self.seq += 1
        await self.send_json(
            {
                "type": "heartbeat",
                "seq": self.seq,
                "epoch": state.epoch,
                "version": settled.version if settled else self.version,
            }
        )

    def advance(self) -> None:
        while self.version + 1 in self.ahead:
            self.version += 1
            self.ahead.discard(self.version)
        self.ahead = {v for v in self.ahead if v > self.version}

    # --- channel layer handlers (named after the message type) ------------------------------

    async def events_published(self, message: EventsPublished) -> None:
        epoch, version = message.get("epoch"), message.get("version")
        if epoch is not None and version is not None:
            if epoch != self.epoch:
                # Redis restarted since the snapshot: what it lost of the broadcasts, and of
                # the counter, is unknown.
                await self.send_snapshot()
                return
            if version <= self.version or version in self.ahead:
                return  # in the snapshot already, or a repeat
            self.ahead.add(version)
            self.advance()
        for event in message["events"]:
            if not sections.shown(event):
                continue
            self.pending.append(sections.event_row(event))
            self.dirty.update(sections.AFFECTS.get(event["type"], ()))
        self.changed.set()

    # --- loops ----------------------------------------------------------------------------

    async def flush_loop(self) -> None:
        """Sends a change at once when the last message left long enough ago, else as soon as
        the interval allows: a lone event is not held back, a burst still makes one message."""
        loop = asyncio.get_running_loop()
        while True:
            await self.changed.wait()
            wait = self.last_sent + FLUSH_SECONDS - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.changed.clear()
            current = StateVersion(self.epoch, self.version)  # type: ignore[arg-type]
            if not self.dirty and not self.pending and current == self.sent_version:
                continue
            self.last_sent = loop.time()
            names, self.dirty = sorted(self.dirty), set()
            events, self.pending = self.pending, []
            try:
                built = await _build(names)
            except Exception:
                logger.exception("could not build dashboard sections %s", names)
                continue
            self.seq += 1
            self.sent_version = current
            await self.send_json(
                {
                    "type": "delta",
                    "seq": self.seq,
                    "epoch": current.epoch,
                    "version": current.version,
                    "sections": built,
                    "events": events[-50:],
                }
            )

    async def services_loop(self) -> None:
        """The tiles ride along with the next delta; they trigger one themselves only when
        nothing else was sent for a while, so they never hold an event back."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SERVICES_EVERY_SECONDS)
            self.dirty.add("services")
            if loop.time() - self.last_sent >= SERVICES_EVERY_SECONDS:
                self.changed.set()

    async def heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.send_heartbeat()
            except Exception:
                # A snapshot it sent failed half-way (the database, Redis going away): the
                # next heartbeat finds the page behind again.
                logger.exception("dashboard heartbeat failed")
