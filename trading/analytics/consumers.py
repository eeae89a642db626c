"""analytics reads every event through its own consumer group, ``analytics``."""

from __future__ import annotations

from django.db import transaction

from trading.analytics import metrics
from trading.analytics.learning import record_learning
from trading.events.consumer import drain_exclusively
from trading.events.envelope import Event

GROUP = "analytics"


def handle_event(event: Event) -> None:
    transaction.on_commit(lambda: metrics.EVENTS_RECEIVED.inc(type=event.type))
    if event.type == "position.closed" and event.replay_of is None:
        record_learning(int(event.payload["position_id"]))


def drain_events() -> dict:
    """Reads every new event once: counted, and closed positions recorded for learning."""
    return drain_exclusively(GROUP, handle_event)
