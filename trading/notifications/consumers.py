"""Notifications read the event log through their own consumer group, ``notifications``."""

from __future__ import annotations

from trading.events.consumer import drain_exclusively
from trading.events.envelope import Event
from trading.notifications.notices import EVENT_TYPES, notice_for_event
from trading.notifications.services import queue_notices

GROUP = "notifications"


def handle_event(event: Event) -> None:
    if event.replay_of is not None:
        return  # a copy of history: operators were told the first time
    notice = notice_for_event(event.type, event.payload)
    if notice is not None:
        queue_notices([notice], now=event.ts)


def drain_events() -> dict:
    """Queues a notification for each new event operators should hear of."""
    # A new group starts at "$": operators are told what happens from now on, not the history.
    return drain_exclusively(GROUP, handle_event, types=EVENT_TYPES, start="$")
