"""The types of event the platform publishes: the design's trading flow, then everything else.

A type is a stable string (stored in the event log, matched by consumers and the dashboard,
counted in metrics by type), so members may be added but never renamed.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    MARKET_BAR = "market.bar"
    SIGNAL_GENERATED = "signal.generated"
    ORDER_REQUESTED = "order.requested"
    ORDER_DENIED = "order.denied"
    ORDER_SUBMITTED = "order.submitted"
    ORDER_REJECTED = "order.rejected"
    ORDER_FILLED = "order.filled"
    POSITION_OPENED = "position.opened"
    POSITION_CHANGED = "position.changed"
    POSITION_CLOSED = "position.closed"
    POSITION_LIQUIDATED = "position.liquidated"
    LEARNING_RECORDED = "learning.recorded"
    RISK_ALERT = "risk.alert"
    RISK_STATE_CHANGED = "risk.state_changed"
    MODEL_TRAINED = "model.trained"
    MODEL_PROMOTED = "model.promoted"
    MODEL_ROLLED_BACK = "model.rolled_back"
    DRIFT_DETECTED = "drift.detected"
    PORTFOLIO_REBALANCED = "portfolio.rebalanced"
    SERVICE_DEGRADED = "service.degraded"
    SERVICE_RECOVERED = "service.recovered"
    SELFTEST_STARTED = "selftest.started"
    SELFTEST_RESULT = "selftest.result"
    SELFTEST_FINISHED = "selftest.finished"
    BACKTEST_PARITY_MISMATCH = "backtest.parity_mismatch"
