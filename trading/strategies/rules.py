"""Two plain rule strategies, long-only as a spot account trades.

``sma_crossover``: BUY ``notional`` when the ``fast``-bar simple moving average of the close
crosses above the ``slow``-bar one (it was at or below it on the bar before and is above it on
the bar that closed), close the position when it crosses below.

``rsi_mean_reversion``: BUY ``notional`` when the ``period``-bar RSI falls below ``oversold``
(it was at or above it on the bar before), close the position when it rises above
``overbought``. RSI is Cutler's, the simple mean of gains and of losses over the last
``period`` changes, as the ai model's ``rsi_14`` feature: it depends on the last ``period + 1``
closes only.

Both act on a change between the bar before and the bar that closed, so a signal is sent once
per crossing, not on every bar the condition holds. A close with no position is denied by the
risk checks, as any such signal is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Any

import numpy as np

from trading.marketdata.bars import Bar
from trading.strategies.base import (
    InvalidParameters,
    SignalIntent,
    check_confidence,
    number,
    unknown,
    whole,
)

BUY, SELL = "BUY", "SELL"
_NONE: list[SignalIntent] = []
_NOTIONAL_RANGE = (Decimal("0.01"), Decimal("100000000"))


@dataclass(frozen=True)
class SmaCrossover:
    fast: int
    slow: int
    notional: Decimal
    confidence: Decimal
    kind: str = "sma_crossover"

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any], confidence: Decimal) -> SmaCrossover:
        unknown(parameters, {"fast", "slow", "notional"})
        fast = whole(parameters, "fast", 10, 1, 1000)
        slow = whole(parameters, "slow", 30, 2, 5000)
        if fast >= slow:
            raise InvalidParameters(f"fast ({fast}) must be shorter than slow ({slow})")
        notional = number(parameters, "notional", "1000", *_NOTIONAL_RANGE)
        return cls(fast, slow, notional, check_confidence(confidence))

    @property
    def warmup(self) -> int:
        return self.slow + 1

    @property
    def version(self) -> str:
        return f"{self.kind}(fast={self.fast},slow={self.slow},notional={self.notional})"

    def on_bar(self, window: Sequence[Bar]) -> list[SignalIntent]:
        if len(window) < self.warmup:
            return []
        closes = [float(bar.close) for bar in window[-self.warmup :]]
        end = len(closes)
        return self._cross(
            window[-1].symbol, self._spread(closes, end - 1), self._spread(closes, end)
        )

    def on_series(self, bars: Sequence[Bar], start: int) -> list[list[SignalIntent]]:
        # The spread after bar i is the one the window ending at bar i + 1 sees "before": the
        # same sums of the same closes, so each is worked out once, for every window at once.
        # One empty list stands for every bar without a signal (read, never changed).
        out: list[list[SignalIntent]] = [_NONE] * (len(bars) - start)
        slow, fast = self.slow, self.fast
        # The first bar with a spread before it and after it: bar i sees spreads[i - slow]
        # before and spreads[i + 1 - slow] now, the spread of the closes before index ``end``
        # being spreads[end - slow], as ``_spread`` works it out.
        first = max(start, slow)
        if len(bars) <= first:
            return out
        closes = np.array([float(bar.close) for bar in bars])
        fast_means = _window_sums(closes[slow - fast :], fast) / fast
        spreads = fast_means - _window_sums(closes, slow) / slow
        before, now = spreads[first - slow : -1], spreads[first + 1 - slow :]
        # ``_cross`` acts only where the spread's sign changes (to or from zero included):
        # everywhere else it returns nothing.
        for k in np.flatnonzero(np.sign(before) != np.sign(now)).tolist():
            i = first + k
            out[i - start] = self._cross(bars[i].symbol, float(before[k]), float(now[k]))
        return out

    def _spread(self, closes: list[float], end: int) -> float:
        """Fast SMA less slow SMA of the closes before index ``end``."""
        return (
            _total(closes[end - self.fast : end]) / self.fast
            - _total(closes[end - self.slow : end]) / self.slow
        )

    def _cross(self, symbol: str, before: float, now: float) -> list[SignalIntent]:
        if before <= 0 < now:
            return [SignalIntent(symbol, BUY, self.confidence, notional=self.notional)]
        if before >= 0 > now:
            return [SignalIntent(symbol, SELL, self.confidence, close_position=True)]
        return []


@dataclass(frozen=True)
class RsiMeanReversion:
    period: int
    oversold: Decimal
    overbought: Decimal
    notional: Decimal
    confidence: Decimal
    kind: str = "rsi_mean_reversion"

    @classmethod
    def from_parameters(
        cls, parameters: Mapping[str, Any], confidence: Decimal
    ) -> RsiMeanReversion:
        unknown(parameters, {"period", "oversold", "overbought", "notional"})
        period = whole(parameters, "period", 14, 2, 500)
        oversold = number(parameters, "oversold", "30", Decimal(0), Decimal(100))
        overbought = number(parameters, "overbought", "70", Decimal(0), Decimal(100))
        if oversold >= overbought:
            raise InvalidParameters(
                f"oversold ({oversold}) must be below overbought ({overbought})"
            )
        notional = number(parameters, "notional", "1000", *_NOTIONAL_RANGE)
        return cls(period, oversold, overbought, notional, check_confidence(confidence))

    @property
    def warmup(self) -> int:
        return self.period + 2

    @property
    def version(self) -> str:
        return (
            f"{self.kind}(period={self.period},oversold={self.oversold},"
            f"overbought={self.overbought},notional={self.notional})"
        )

    def on_bar(self, window: Sequence[Bar]) -> list[SignalIntent]:
        if len(window) < self.warmup:
            return []
        closes = [float(bar.close) for bar in window[-self.warmup :]]
        return self._cross(window[-1].symbol, rsi(closes[:-1]), rsi(closes[1:]))

    def on_series(self, bars: Sequence[Bar], start: int) -> list[list[SignalIntent]]:
        closes = [float(bar.close) for bar in bars]
        span = self.period + 1
        out: list[list[SignalIntent]] = []
        before = rsi(closes[start - span : start]) if start >= span else None
        for i in range(start, len(bars)):
            now = rsi(closes[i + 1 - span : i + 1]) if i + 1 >= span else None
            out.append(
                self._cross(bars[i].symbol, before, now)
                if before is not None and now is not None
                else []
            )
            before = now
        return out

    def _cross(self, symbol: str, before: Decimal, now: Decimal) -> list[SignalIntent]:
        if before >= self.oversold > now:
            return [SignalIntent(symbol, BUY, self.confidence, notional=self.notional)]
        if before <= self.overbought < now:
            return [SignalIntent(symbol, SELL, self.confidence, close_position=True)]
        return []


def _total(values: Sequence[float]) -> float:
    """The floats added one by one from the first: the order ``_window_sums`` adds them in, so
    a window's mean is the same float whichever works it out."""
    total = 0.0
    for value in values:
        total += value
    return total


def _window_sums(values: np.ndarray, size: int) -> np.ndarray:
    """``_total`` of every ``size`` consecutive values, all windows at once: one elementwise
    addition per position in the window (never a reduction, whose pairwise sums would round
    differently)."""
    count = len(values) - size + 1
    sums = values[:count].copy()
    for offset in range(1, size):
        sums += values[offset : offset + count]
    return sums


def rsi(closes: Sequence[float]) -> Decimal:
    """Cutler's RSI of these closes (``period + 1`` of them), 0..100; 50 when none moved. A
    Decimal of the float's shortest form, so the thresholds compare exactly."""
    gains = losses = 0.0
    for previous, current in pairwise(closes):
        change = current - previous
        if change > 0:
            gains += change
        else:
            losses -= change
    moved = gains + losses
    return Decimal(repr(100.0 * gains / moved)) if moved > 0 else Decimal(50)
