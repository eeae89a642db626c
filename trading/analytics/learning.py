"""The learning loop's ledger: each closed position, tied to what the model said when it opened."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from trading.analytics import metrics
from trading.events import outbox
from trading.events.envelope import new_event
from trading.models import LearningRecord, Position, Signal


def record_learning(position_id: int) -> LearningRecord | None:
    """Records the outcome of a closed position once; publishes ``learning.recorded``.

    Returns None when the position is not closed, or was recorded already.
    """
    position = Position.objects.select_related("account").filter(pk=position_id).first()
    if position is None:  # a sandbox position the system checks have cleared already
        return None
    if position.status != Position.Status.CLOSED or position.closed_at is None:
        return None
    signal = (
        Signal.objects.filter(correlation_id=position.correlation_id).order_by("created_at").first()
    )
    net = position.net_realized_pnl
    record, created = LearningRecord.objects.get_or_create(
        position=position,
        defaults={
            "signal": signal,
            "symbol": position.symbol,
            "model_version": signal.model_version if signal else "",
            "side": signal.side if signal else ("BUY" if net >= 0 else "SELL"),
            "probability_up": signal.probability_up if signal else None,
            "confidence": signal.confidence if signal else None,
            "features": signal.features if signal else None,
            "net_pnl": net,
            "won": net > Decimal("0"),
            "opened_at": position.opened_at,
            "closed_at": position.closed_at,
        },
    )
    if not created:
        return None
    event = new_event(
        "learning.recorded",
        {
            "position_id": position.pk,
            "symbol": record.symbol,
            "model_version": record.model_version,
            "side": record.side,
            "probability_up": record.probability_up,
            "net_pnl": str(record.net_pnl),
            "won": record.won,
        },
        service="analytics",
        correlation_id=str(position.correlation_id),
    )
    outbox.record([event])
    transaction.on_commit(metrics.LEARNING_RECORDED.inc)
    return record
