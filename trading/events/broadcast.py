"""The one way workers reach the browser: published events, sent to the dashboard's group on
the channel layer. Best effort: the event log is the record, a dashboard that missed a message
resynchronises from a snapshot."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from trading.events.envelope import Event

logger = logging.getLogger(__name__)

DASHBOARD_GROUP = "dashboard"


class EventsPublished(TypedDict):
    """The channel-layer message; its ``type`` names the consumer's handler."""

    type: str  # "events.published"
    events: list[dict]


def broadcast(events: Sequence[Event]) -> None:
    if not events:
        return
    message: EventsPublished = {
        "type": "events.published",
        "events": [event.as_json() for event in events],
    }
    try:
        async_to_sync(get_channel_layer().group_send)(DASHBOARD_GROUP, message)
    except Exception:  # the dashboard must never break the flow it shows
        logger.warning("could not broadcast %d events to the dashboard", len(events), exc_info=True)
