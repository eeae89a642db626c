"""The reason codes carried by every risk denial and every automatic trading-state change.

A code is a stable string (it is stored with the order, sent in ``order.denied`` and
``risk.state_changed`` events and counted in metrics), so members may be added but never renamed.
The exchange-rule codes are named after the Binance filter an order would fail, so a denial here
and a ``-1013 Filter failure: LOT_SIZE`` from the exchange read the same.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why an order was denied or the trading state changed. The value equals the name."""

    TRADING_HALTED = "TRADING_HALTED"
    REDUCE_ONLY = "REDUCE_ONLY"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    MAX_DRAWDOWN = "MAX_DRAWDOWN"
    SYMBOL_NOT_ALLOWED = "SYMBOL_NOT_ALLOWED"
    SYMBOL_NOT_TRADING = "SYMBOL_NOT_TRADING"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    MAX_LEVERAGE = "MAX_LEVERAGE"
    LOT_SIZE = "LOT_SIZE"
    MARKET_LOT_SIZE = "MARKET_LOT_SIZE"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    MAX_NOTIONAL = "MAX_NOTIONAL"
    MAX_POSITION_NOTIONAL = "MAX_POSITION_NOTIONAL"
    MAX_TOTAL_EXPOSURE = "MAX_TOTAL_EXPOSURE"
    MAX_OPEN_POSITIONS = "MAX_OPEN_POSITIONS"
    ORDER_RATE = "ORDER_RATE"
    NO_MARKET_DATA = "NO_MARKET_DATA"
    EXCHANGE_REJECTED = "EXCHANGE_REJECTED"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    LEVERAGE_NOT_SUPPORTED = "LEVERAGE_NOT_SUPPORTED"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"

    @property
    def description(self) -> str:
        """A one-line explanation for operators (dashboard, admin, alerts)."""
        return DESCRIPTIONS[self]

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """``(value, description)`` pairs, in declaration order, for a model field's choices."""
        return [(member.value, member.description) for member in cls]


DESCRIPTIONS: dict[Reason, str] = {
    Reason.TRADING_HALTED: "Trading is halted; no orders are accepted until an operator resumes.",
    Reason.REDUCE_ONLY: "Trading or the order is reduce-only; it would open or grow a position.",
    Reason.DAILY_LOSS_LIMIT: "Today's loss has reached the daily loss limit.",
    Reason.MAX_DRAWDOWN: "Equity has fallen from its peak by the maximum drawdown or more.",
    Reason.SYMBOL_NOT_ALLOWED: "The symbol is not in the list of allowed symbols.",
    Reason.SYMBOL_NOT_TRADING: "The exchange is not accepting orders on this symbol.",
    Reason.LOW_CONFIDENCE: "The signal's confidence is below the minimum confidence.",
    Reason.MAX_LEVERAGE: "The requested leverage is outside 1 to the maximum leverage.",
    Reason.LOT_SIZE: "The quantity breaks the exchange's LOT_SIZE (step, min or max quantity).",
    Reason.MARKET_LOT_SIZE: "The quantity breaks the exchange's MARKET_LOT_SIZE for market orders.",
    Reason.MIN_NOTIONAL: "The order's value is below the exchange's minimum notional.",
    Reason.MAX_NOTIONAL: "The order's value is above the exchange's maximum notional.",
    Reason.MAX_POSITION_NOTIONAL: "The resulting position would exceed the per-symbol limit.",
    Reason.MAX_TOTAL_EXPOSURE: "The resulting total exposure would exceed the exposure limit.",
    Reason.MAX_OPEN_POSITIONS: "The order would open a position beyond the open-positions limit.",
    Reason.ORDER_RATE: "The order would exceed the maximum number of orders per minute.",
    Reason.NO_MARKET_DATA: "No price is known for the symbol yet, so the order cannot be valued.",
    Reason.EXCHANGE_REJECTED: "The exchange refused the order; the detail has its message.",
    Reason.INSUFFICIENT_BALANCE: "The account's free balance cannot pay for the order (spot).",
    Reason.LEVERAGE_NOT_SUPPORTED: "A spot account trades at leverage 1 only.",
    Reason.INSUFFICIENT_MARGIN: "The futures account's available balance cannot pay the margin.",
}


class AlertReason(StrEnum):
    """Why a ``risk.alert`` was raised: a limit that changed the trading state, or a book that
    disagrees with its record. Stable strings, like ``Reason``'s."""

    DAILY_LOSS_LIMIT = Reason.DAILY_LOSS_LIMIT.value
    MAX_DRAWDOWN = Reason.MAX_DRAWDOWN.value
    CASH_MISMATCH = "CASH_MISMATCH"  # the running cash disagreed with the fills
    UNKNOWN_EXCHANGE_ORDER = "UNKNOWN_EXCHANGE_ORDER"  # an open order the platform did not place
    BALANCE_MISMATCH = "BALANCE_MISMATCH"  # the exchange holds other balances than the ledger
    POSITION_MISMATCH = "POSITION_MISMATCH"  # the exchange holds other futures positions
