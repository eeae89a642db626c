"""ai reads closed bars through its own consumer group, ``ai``."""

from __future__ import annotations

from trading.ai.champion import judge_challenger
from trading.ai.live import score_due_signals
from trading.ai.services import forget_current_models, generate_signal
from trading.events.consumer import drain_exclusively
from trading.events.envelope import Event
from trading.marketdata.bars import Bar

GROUP = "ai"


def handle_event(event: Event) -> None:
    if event.type == "market.bar" and event.replay_of is None:
        generate_signal(event)
        # After the signal, which is the latency that counts: the bar also judges the signals
        # whose horizon it closes.
        if score_due_signals(Bar.from_payload(event.payload)) and judge_challenger():
            forget_current_models()


def drain_bars() -> dict:
    """Turns new bars into signals, each symbol's in order."""
    # A signal on an old bar would trade on stale prices: a new group starts at "$".
    return drain_exclusively(GROUP, handle_event, types={"market.bar"}, start="$")
