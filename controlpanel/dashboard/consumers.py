"""The dashboard's websocket: a snapshot on connect, then coalesced deltas stamped with a
sequence number (docs/dashboard-protocol.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from controlpanel.dashboard import sections
from trading.events.broadcast import DASHBOARD_GROUP, EventsPublished

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.1  # at most ten deltas a second, however fast events arrive
SERVICES_EVERY_SECONDS = 2.0  # heartbeat ages move on their own: refresh the tiles
UNAUTHENTICATED = 4401


@database_sync_to_async
def _build(names) -> dict:
    return sections.build(names)


@database_sync_to_async
def _can_operate(user) -> bool:
    return user.has_perm("trading.operate_trading")


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accepted first so that the browser sees the 4401 close code, not a failed handshake.
            await self.accept()
            await self.close(code=UNAUTHENTICATED)
            return
        self.seq = 0
        self.dirty: set[str] = set()
        self.pending: list[dict] = []
        self.changed = asyncio.Event()
        self.last_sent = 0.0
        await self.channel_layer.group_add(DASHBOARD_GROUP, self.channel_name)
        await self.accept()
        self.user_info = {"username": user.get_username(), "can_operate": await _can_operate(user)}
        await self.send_snapshot()
        self.loops = [
            asyncio.create_task(self.flush_loop()),
            asyncio.create_task(self.services_loop()),
        ]

    async def disconnect(self, code: int) -> None:
        for task in getattr(self, "loops", []):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.channel_layer.group_discard(DASHBOARD_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        if isinstance(content, dict) and content.get("action") == "resync":
            await self.send_snapshot()
        else:
            await self.send_json({"type": "error", "detail": "unknown action; send resync"})

    async def send_snapshot(self) -> None:
        self.dirty.clear()
        self.pending.clear()
        built = await _build(list(sections.BUILDERS))
        # The number is taken after the build, so no delta sent meanwhile can carry a later one.
        self.seq += 1
        await self.send_json(
            {"type": "snapshot", "seq": self.seq, "user": self.user_info, "sections": built}
        )

    # --- channel layer handlers (named after the message type) ------------------------------

    async def events_published(self, message: EventsPublished) -> None:
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
            if not self.dirty and not self.pending:
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
            await self.send_json(
                {"type": "delta", "seq": self.seq, "sections": built, "events": events[-50:]}
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
