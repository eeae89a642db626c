"""What a notification can be about, and how much it matters. Both are stored (on channels,
notifications and deliveries), so members may be added but never renamed."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    TRADING_STATE = "trading.state_changed"  # halts, emergency stops, resumes: who and why
    RISK_LIMIT = "risk.limit"  # the daily loss limit halting, the drawdown limit reducing
    DENIALS = "orders.denied"  # denials, grouped: a burst is one message with reason counts
    SELFTEST_FAILED = "selftest.failed"
    SERVICE_DEGRADED = "service.degraded"
    SERVICE_RECOVERED = "service.recovered"
    MODEL_PROMOTED = "model.promoted"
    MODEL_ROLLED_BACK = "model.rolled_back"
    LIQUIDATION = "position.liquidated"
    PARITY_MISMATCH = "backtest.parity_mismatch"
    ALERT = "prometheus.alert"  # from Alertmanager
    TEST = "test"  # the admin's "send a test"

    @property
    def label(self) -> str:
        return LABELS[self]

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [(kind.value, kind.label) for kind in cls if kind is not cls.TEST]


LABELS = {
    Kind.TRADING_STATE: "Trading state changes and emergency stops",
    Kind.RISK_LIMIT: "Daily loss and drawdown limits acting",
    Kind.DENIALS: "Order denials (a burst is one message)",
    Kind.SELFTEST_FAILED: "Failed system checks",
    Kind.SERVICE_DEGRADED: "A service degraded",
    Kind.SERVICE_RECOVERED: "A service recovered",
    Kind.MODEL_PROMOTED: "A model promoted",
    Kind.MODEL_ROLLED_BACK: "A model rolled back",
    Kind.LIQUIDATION: "Liquidations",
    Kind.PARITY_MISMATCH: "Backtest parity mismatches",
    Kind.ALERT: "Prometheus alerts (through Alertmanager)",
    Kind.TEST: "Test messages",
}


# What a summary counts: "3 trading state changes", "100 order denials".
NOUNS = {
    Kind.TRADING_STATE: "trading state changes",
    Kind.RISK_LIMIT: "risk limits acting",
    Kind.DENIALS: "order denials",
    Kind.SELFTEST_FAILED: "failed system check runs",
    Kind.SERVICE_DEGRADED: "services degraded",
    Kind.SERVICE_RECOVERED: "services recovered",
    Kind.MODEL_PROMOTED: "models promoted",
    Kind.MODEL_ROLLED_BACK: "models rolled back",
    Kind.LIQUIDATION: "liquidations",
    Kind.PARITY_MISMATCH: "parity mismatches",
    Kind.ALERT: "alerts",
    Kind.TEST: "test messages",
}


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    @classmethod
    def parse(cls, value: str | None, default: Severity | None = None) -> Severity:
        """The severity named ``value`` (any case), else ``default`` (or INFO)."""
        try:
            return cls((value or "").lower())
        except ValueError:
            return default or cls.INFO
