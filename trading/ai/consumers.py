"""ai reads closed bars through its own consumer group, ``ai``."""

from __future__ import annotations

import functools
import logging

from django.db import transaction

from trading.ai.champion import judge_challenger
from trading.ai.live import score_due_signals
from trading.ai.services import forget_current_models, generate_signal
from trading.events.consumer import drain_exclusively
from trading.events.envelope import Event
from trading.marketdata.bars import Bar

logger = logging.getLogger(__name__)

GROUP = "ai"


def handle_event(event: Event) -> None:
    if event.type == "market.bar" and event.replay_of is None:
        generate_signal(event)
        # The bar also judges the signals whose horizon it closes, after the drain (see
        # drain_bars): kept once its handling commits; one rolled back is its redelivery's.
        bar = Bar.from_payload(event.payload)
        transaction.on_commit(functools.partial(_closed.append, bar))


def drain_bars() -> dict:
    """Turns new bars into signals, each symbol's in order, then judges the signals whose
    horizon those bars close."""
    try:
        # A signal on an old bar would trade on stale prices: a new group starts at "$".
        return drain_exclusively(GROUP, handle_event, types={"market.bar"}, start="$")
    finally:
        bars, _closed[:] = _closed[:], []
        if bars:
            try:
                judge_due_signals(bars)
            except Exception:
                # Scoring is idempotent and reads the horizon bars from the bar store: the next
                # bar of each symbol judges what these left.
                logger.exception("judging the signals due at %d bars failed", len(bars))


# The bars this process's drain handled, waiting for it to finish: a bar's signal does not wait
# for the scoring of the bars before it, and a drain lock is not held for scoring.
_closed: list[Bar] = []


def judge_due_signals(bars: list[Bar]) -> int:
    """Scores the signals whose horizon each bar closes, in the bars' order and in one
    transaction, then ends the challenger's trial when its rule is met. Returns how many
    signals got an outcome."""
    with transaction.atomic():
        scored = sum(score_due_signals(bar) for bar in bars)
    if scored and judge_challenger():
        forget_current_models()
    return scored
