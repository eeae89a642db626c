"""exec-risk reads the event log through its own consumer group, ``exec-risk``."""

from __future__ import annotations

from trading.events.consumer import drain_exclusively
from trading.events.envelope import Event
from trading.execution import exits
from trading.marketdata.bars import Bar

GROUP = "exec-risk"


def handle_event(event: Event) -> None:
    if event.type == "market.bar":
        exits.on_bar(Bar.from_payload(event.payload))


def drain_bars() -> dict:
    """Handles new bars in order: paper fills on later bars, stop-loss and take-profit."""
    # Bars from before exec-risk first ran are history, not something to act on: start at "$".
    return drain_exclusively(GROUP, handle_event, types={"market.bar"}, start="$")
