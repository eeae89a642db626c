"""ai reads closed bars through its own consumer group, ``ai``."""

from __future__ import annotations

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
        # The bar also judges the signals whose horizon it closes, once the signals of its batch
        # are committed and on their way: a bar's signal does not wait for the scoring of the
        # bars before it.
        _judge_after_commit(Bar.from_payload(event.payload))


def drain_bars() -> dict:
    """Turns new bars into signals, each symbol's in order."""
    # A signal on an old bar would trade on stale prices: a new group starts at "$".
    return drain_exclusively(GROUP, handle_event, types={"market.bar"}, start="$")


def judge_due_signals(bars: list[Bar]) -> int:
    """Scores the signals whose horizon each bar closes, in the bars' order and in one
    transaction, then ends the challenger's trial when its rule is met. Returns how many
    signals got an outcome."""
    with transaction.atomic():
        scored = sum(score_due_signals(bar) for bar in bars)
    if scored and judge_challenger():
        forget_current_models()
    return scored


class _JudgeAfterCommit:
    """The bars of one transaction, judged by one ``judge_due_signals`` after it commits (after
    the outbox's relay of its signals, registered before). Scoring is idempotent and reads the
    horizon bars from the bar store, so a bar whose handler rolled back but stayed in the list
    judges nothing wrongly, and one left out (a rollback took the list) is caught up by the
    next bar of its symbol or by its redelivery."""

    def __init__(self) -> None:
        self.bars: list[Bar] = []

    def __call__(self) -> None:
        try:
            judge_due_signals(self.bars)
        except Exception:
            logger.exception("judging the signals due at %d bars failed", len(self.bars))


def _judge_after_commit(bar: Bar) -> None:
    connection = transaction.get_connection()
    for _sids, callback, _robust in connection.run_on_commit:
        if isinstance(callback, _JudgeAfterCommit):
            callback.bars.append(bar)
            return
    callback = _JudgeAfterCommit()
    callback.bars.append(bar)
    transaction.on_commit(callback)
