"""The analytics service: portfolio performance, the model's live record, drift, sizing and
rebalancing. Each reads the ledger, calls the pure statistics, and acts only through exec-risk."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from trading import bus
from trading.analytics import metrics
from trading.analytics.calibration import brier_score, hit_rate
from trading.analytics.drift import DriftReport, detect_drift
from trading.analytics.performance import summarize
from trading.analytics.sizing import assess_sizing
from trading.events import outbox
from trading.events.envelope import new_event
from trading.ledger import services as ledger
from trading.marketdata.prices import latest_prices
from trading.models import (
    Account,
    EquitySnapshot,
    Fill,
    LearningRecord,
    ModelVersion,
    PerformanceSnapshot,
    Position,
    Signal,
)
from trading.store import redis_client, rkey

logger = logging.getLogger(__name__)
ZERO = Decimal("0")
# Equity snapshots are taken every minute: the Sharpe ratio annualises from that.
SNAPSHOTS_PER_YEAR = 365 * 24 * 60


# --- portfolio and performance ----------------------------------------------------------------


def snapshot_performance(account: Account) -> PerformanceSnapshot:
    """Equity, cash, exposure and performance (win rate, profit factor, Sharpe, drawdown) now."""
    marks = latest_prices()
    trades = list(
        Position.objects.filter(account=account, status=Position.Status.CLOSED)
        .order_by("closed_at")
        .values_list("realized_pnl", "fees_paid")
    )
    pnls = [realized - fees for realized, fees in trades]
    curve = [
        (s.ts, s.equity)
        for s in reversed(EquitySnapshot.objects.filter(account=account).order_by("-ts")[:10_000])
    ]
    summary = summarize(pnls, curve, SNAPSHOTS_PER_YEAR)
    current = ledger.valuation(account, marks)
    exposure = {symbol: str(value) for symbol, value in current.exposure.items()}
    drawdown = summary.max_drawdown if curve else None
    return PerformanceSnapshot.objects.create(
        account=account,
        ts=timezone.now(),
        equity=current.equity,
        cash=current.cash,
        exposure=exposure,
        open_positions=len(exposure),
        closed_trades=len(pnls),
        win_rate=summary.win_rate,
        profit_factor=_finite(summary.profit_factor),
        sharpe_ratio=summary.sharpe_ratio,
        max_drawdown=None if drawdown is None else float(drawdown),
    )


def _finite(value: float | None) -> float | None:
    return value if value is None or np.isfinite(value) else None


# --- the model's live record -----------------------------------------------------------------


def learning_state() -> dict:
    """Per model version: closed trades, hit rate and Brier score of the confidence it gave."""
    state = {}
    versions = (
        LearningRecord.objects.exclude(model_version="")
        .exclude(position__account__is_sandbox=True)
        .values_list("model_version", flat=True)
        .distinct()
    )
    for version in versions:
        records = list(
            LearningRecord.objects.filter(model_version=version)
            .exclude(position__account__is_sandbox=True)
            .values_list("won", "confidence")
        )
        outcomes = [1 if won else 0 for won, _ in records]
        confidences = [float(c) for _, c in records if c is not None]
        state[version] = {
            "closed_trades": len(records),
            "hit_rate": hit_rate(["BUY"] * len(outcomes), outcomes) if outcomes else None,
            "brier": brier_score(confidences, outcomes[: len(confidences)])
            if confidences
            else None,
        }
    return state


# --- drift ------------------------------------------------------------------------------------


def check_drift(live_rows_limit: int = 1000) -> DriftReport | None:
    """The live features of the serving model's signals against its training distribution.

    Over the threshold: ``drift.detected``, and a retraining request to the ai queue (at most one
    an hour, whatever the number of checks that see the drift). The version it makes is a
    challenger: it serves only if it beats the champion on the same live bars."""
    model = ModelVersion.objects.serving().defer("artifact").first()
    if model is None:
        return None
    names = model.metadata["feature_names"]
    stats = {
        name: {"edges": s["bin_edges"], "fractions": s["bin_fractions"]}
        for name, s in model.metadata["feature_stats"].items()
    }
    features = Signal.objects.filter(model_version=model.version, features__isnull=False)
    rows = [
        [f.get(name, np.nan) for name in names]
        for f in features.order_by("-created_at").values_list("features", flat=True)[
            :live_rows_limit
        ]
    ]
    report = detect_drift(
        names, stats, np.array(rows, dtype=float).reshape(-1, len(names)),
        settings.DRIFT_THRESHOLD,
    )  # fmt: skip
    metrics.DRIFT.set(1 if report.drift_detected else 0)
    if report.sufficient_data:
        metrics.MAX_PSI.set(report.max_psi)
    redis_client().set(
        rkey("drift", "last"),
        json.dumps(
            {
                "model_version": model.version,
                "detected": report.drift_detected,
                "max_psi": report.max_psi,
                "summary": report.summary,
            }
        ),
    )
    if report.drift_detected:
        outbox.record(
            [
                new_event(
                    "drift.detected",
                    {"model_version": model.version, **report.as_json()},
                    service="analytics",
                )
            ]
        )
        request_retraining(metrics.TrainingTrigger.DRIFT)
    return report


def request_retraining(trigger: str) -> bool:
    """Asks the ai queue for a new model; False if one was asked for within the hour."""
    if not redis_client().set(rkey("ai", "retraining"), trigger, nx=True, ex=3600):
        return False
    bus.send(bus.RETRAIN_MODEL, trigger, queue="ai")
    metrics.RETRAININGS.inc(trigger=trigger)
    return True


# --- sizing -----------------------------------------------------------------------------------


def update_sizing(account: Account, window: int = 50) -> dict[str, str]:
    """Each symbol's size multiplier from its recent closed trades' returns on notional, for the
    ai service to size its signals by (always inside exec-risk's limits)."""
    multipliers = {}
    for symbol in settings.SYMBOLS:
        closed = Position.objects.filter(account=account, symbol=symbol, status="closed")
        returns = []
        for position in closed.order_by("-closed_at")[:window]:
            notional = _entry_notional(position)
            if notional > 0:
                returns.append(position.net_realized_pnl / notional)
        decision = assess_sizing(list(reversed(returns)))
        multipliers[symbol] = str(decision.multiplier)
    redis_client().hset(rkey("sizing"), mapping=multipliers)
    return multipliers


def _entry_notional(position: Position) -> Decimal:
    fills = Fill.objects.filter(
        order__correlation_id=position.correlation_id, symbol=position.symbol
    )
    opening = fills.filter(side="BUY" if _was_long(position) else "SELL")
    return sum((f.quantity * f.price for f in opening), ZERO)


def _was_long(position: Position) -> bool:
    first = (
        Fill.objects.filter(order__correlation_id=position.correlation_id, symbol=position.symbol)
        .order_by("ts", "id")
        .first()
    )
    return first is None or first.side == "BUY"


# --- rebalancing ------------------------------------------------------------------------------


# A position is trimmed once it exceeds the target weight by this share of the target; the band
# keeps the fees and slippage of a trim from leaving it just above the target, to be trimmed
# again on the next run.
REBALANCE_BAND = Decimal("0.05")


def rebalance(account: Account) -> list[Signal]:
    """Trims every position whose share of equity exceeds the target weight (beyond the band)
    back to the target, through exec-risk: a signal like any other, so every check applies."""
    from trading.execution.intake import SignalRequest, submit_signal
    from trading.marketdata.services import symbol_rules

    marks = latest_prices()
    equity = ledger.account_equity(account, marks)
    if equity <= 0:
        return []
    target = settings.REBALANCE_TARGET_WEIGHT
    rules = symbol_rules()
    trims = []
    for position in ledger.open_positions(account):
        mark = marks.get(position.symbol)
        if mark is None or position.quantity == 0:
            continue
        exposure = abs(position.quantity * mark)
        if exposure / equity <= target * (1 + REBALANCE_BAND):
            continue
        if _trim_in_flight(position.symbol):
            continue
        excess = (exposure - target * equity) / mark
        rule = rules.get(position.symbol)
        quantity = rule.round_quantity(excess, market=True) if rule else excess
        if quantity <= 0:
            continue
        request = SignalRequest(
            symbol=position.symbol,
            side="SELL" if position.quantity > 0 else "BUY",
            confidence=Decimal("1"),
            quantity=quantity,
        )
        rebalanced = {
            "symbol": position.symbol,
            "weight": str(round(exposure / equity, 4)),
            "target": str(target),
            "trim_quantity": str(quantity),
        }
        with transaction.atomic():
            signal = submit_signal(account, request, producer="analytics", source="analytics")
            event = new_event(
                "portfolio.rebalanced",
                {**rebalanced, "signal_id": str(signal.id)},
                service="analytics",
                correlation_id=str(signal.correlation_id),
            )
            outbox.record([event])
        metrics.REBALANCES.inc()
        trims.append(signal)
    return trims


def _trim_in_flight(symbol: str) -> bool:
    return Signal.objects.filter(
        Q(status=Signal.Status.PENDING) | Q(status=Signal.Status.SUBMITTED),
        source="analytics",
        symbol=symbol,
    ).exists()
