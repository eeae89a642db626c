"""The sizing boost (the original spec's "profit amplification"): a bounded multiplier on the order
size of a symbol whose recent risk-adjusted performance has earned it.

Pure: a symbol's recent trades in, a multiplier out. The caller multiplies the size it would
otherwise ask for and sends the order through exec-risk as usual: the boosted order is checked
against every risk limit (notional caps, leverage, open positions, the trading state) like any
other, and a limit that denies or caps it wins. Nothing here knows the limits, so nothing here can
get around them; applying the multiplier inside them is the caller's job.

How it is earned. The score is the per-trade Sharpe ratio ``s = mean / stdev`` of the trades,
which is unitless, so sizes and prices cancel out. A good record over a few trades is mostly luck,
so the multiplier follows a one-sided lower confidence bound on ``s`` rather than ``s`` itself::

    s_low = s - z * sqrt((1 + s**2 / 2) / n)        (the standard error of a Sharpe ratio, Lo 2002)

With the default ``z = 1.645`` (95 %) and ``sharpe_threshold = 0`` the boost begins only when the
record shows a positive edge at 95 % confidence. Above the threshold the multiplier rises linearly
with ``s_low`` from 1 to ``max_multiplier``, reached at ``full_boost_sharpe``; below it, it is
``floor``. For scale: 100 trades with ``s = 0.3`` give ``s_low`` about 0.13 and, by default, a
multiplier of about 1.22; 50 trades need ``s`` above about 0.24 for any boost.

Properties the tests hold it to: with fewer than ``min_trades`` trades the multiplier is exactly 1;
it is never above ``max_multiplier`` nor below ``floor``; it rises above 1 only when ``s_low``
exceeds the threshold; it does not fall when every trade does better by the same amount (a higher
mean at the same risk), and it does not change when every trade is scaled (a larger book). It is
not monotonic in any single trade: one outsized win also widens the dispersion, and a
risk-adjusted score counts that as risk.

Pass returns on notional (net PnL / entry notional) when trade sizes vary, as they will once this
multiplier changes them: on raw PnL the boosted trades would weigh more in the score they fed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum

from trading.analytics.performance import as_decimal

Number = Decimal | float | int

ONE = Decimal(1)
# The multiplier's precision; rounded down so that it never exceeds what was earned.
_QUANTUM = Decimal("0.0001")
Z_ONE_SIDED_95 = 1.645


class SizingReason(StrEnum):
    INSUFFICIENT_HISTORY = "insufficient_history"
    NOT_EARNED = "not_earned"
    BOOSTED = "boosted"


@dataclass(frozen=True, slots=True)
class SizingDecision:
    """A multiplier and the figures it came from, for the audit trail and the dashboard.

    ``sharpe`` and ``sharpe_lower_bound`` are None with insufficient history; they are infinite
    when every trade had the same PnL (no dispersion: +inf for a gain, -inf for a loss).
    """

    multiplier: Decimal
    reason: SizingReason
    trades: int
    sharpe: float | None
    sharpe_lower_bound: float | None


def assess_sizing(
    recent_trades: Sequence[Number],
    *,
    min_trades: int = 10,
    max_multiplier: Number = Decimal("1.5"),
    floor: Number = ONE,
    sharpe_threshold: float = 0.0,
    full_boost_sharpe: float = 0.3,
    confidence_z: float = Z_ONE_SIDED_95,
) -> SizingDecision:
    """The size multiplier a symbol's recent trades earn, with the reason; see the module docs.

    ``recent_trades`` are the symbol's latest closed trades, each as net PnL or (better) as a
    return on notional; Decimals, floats and ints are taken, order does not matter, and which
    trades count as recent is the caller's choice. Returns a multiplier of exactly 1 with fewer
    than ``min_trades`` trades; otherwise ``floor`` when the lower bound ``s_low`` is at or below
    ``sharpe_threshold``, else ``1 + (max_multiplier - 1) * min(1, (s_low - sharpe_threshold) /
    (full_boost_sharpe - sharpe_threshold))`` rounded down to 4 places.

    ``floor`` (default 1, no penalty) may be set below 1 to shrink the size of a symbol whose
    record does not earn a boost. Raises ``ValueError`` when ``min_trades`` is below 2,
    ``max_multiplier`` below 1, ``floor`` outside (0, 1], ``full_boost_sharpe`` not above
    ``sharpe_threshold``, ``confidence_z`` negative, or a trade is not a finite number.
    """
    maximum = as_decimal("max_multiplier", max_multiplier)
    minimum = as_decimal("floor", floor)
    if min_trades < 2:
        raise ValueError(f"min_trades must be at least 2 to measure dispersion, got {min_trades}")
    if maximum < ONE:
        raise ValueError(f"max_multiplier must be at least 1, got {max_multiplier}")
    if not 0 < minimum <= ONE:
        raise ValueError(f"floor must be in (0, 1], got {floor}")
    if not full_boost_sharpe > sharpe_threshold:
        raise ValueError("full_boost_sharpe must be above sharpe_threshold")
    if not confidence_z >= 0:
        raise ValueError(f"confidence_z must not be negative, got {confidence_z}")
    pnls = [float(as_decimal("trade", trade)) for trade in recent_trades]
    n = len(pnls)
    if n < min_trades:
        return SizingDecision(ONE, SizingReason.INSUFFICIENT_HISTORY, n, None, None)

    sharpe, lower = _sharpe_bounds(pnls, confidence_z)
    if not lower > sharpe_threshold:
        return SizingDecision(minimum, SizingReason.NOT_EARNED, n, sharpe, lower)
    earned = min(1.0, (lower - sharpe_threshold) / (full_boost_sharpe - sharpe_threshold))
    raw = ONE + (maximum - ONE) * Decimal(repr(earned))
    multiplier = min(max(raw.quantize(_QUANTUM, rounding=ROUND_FLOOR), ONE), maximum)
    return SizingDecision(multiplier, SizingReason.BOOSTED, n, sharpe, lower)


def sizing_multiplier(
    recent_trades: Sequence[Number],
    *,
    min_trades: int = 10,
    max_multiplier: Number = Decimal("1.5"),
    floor: Number = ONE,
    sharpe_threshold: float = 0.0,
    full_boost_sharpe: float = 0.3,
    confidence_z: float = Z_ONE_SIDED_95,
) -> Decimal:
    """The multiplier of ``assess_sizing``, in ``[floor, max_multiplier]``; exactly 1 with fewer
    than ``min_trades`` trades. Always applied to a size that then goes through the risk checks.
    """
    return assess_sizing(
        recent_trades,
        min_trades=min_trades,
        max_multiplier=max_multiplier,
        floor=floor,
        sharpe_threshold=sharpe_threshold,
        full_boost_sharpe=full_boost_sharpe,
        confidence_z=confidence_z,
    ).multiplier


def _sharpe_bounds(pnls: Sequence[float], z: float) -> tuple[float, float]:
    """The per-trade Sharpe ratio and its one-sided lower confidence bound."""
    n = len(pnls)
    mean = math.fsum(pnls) / n
    std = math.sqrt(math.fsum((pnl - mean) ** 2 for pnl in pnls) / (n - 1))
    if std == 0:
        # Identical trades: the ratio is the limit of mean / std as the dispersion vanishes, and
        # so is its bound (s_low grows without limit with s for n >= 2).
        limit = math.copysign(math.inf, mean) if mean != 0 else 0.0
        return limit, limit if mean != 0 else -math.inf
    sharpe = mean / std
    return sharpe, sharpe - z * math.sqrt((1 + sharpe**2 / 2) / n)
