"""Trading performance from closed trades and an equity curve: win rate, profit factor, Sharpe
ratio, maximum drawdown.

Pure: values in, statistics out, no I/O and no clock. The analytics worker loads the closed
positions and the persisted equity snapshots, calls ``summarize`` and stores or publishes
``PerformanceSummary.as_json()``.

Inputs. A trade is its net PnL (after fees) in the quote currency; an equity curve is a list of
``(aware datetime, equity)`` pairs, oldest first. Amounts from the ledger are Decimals and are
summed exactly; floats and ints are accepted too (a float is taken at its shortest repr, so
``0.1`` counts as ``Decimal("0.1")``). Money stays Decimal in the results (sums of PnL, the
drawdown fraction, which is compared with the Decimal drawdown limit of the risk module); ratios
that are statistics (win rate, profit factor, Sharpe) are floats.

"Not defined" is ``None`` (no trades, too few returns), never zero: a dashboard showing a win rate
of 0 % for an account that has not traded would be lying.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal
from itertools import pairwise
from typing import Any

Number = Decimal | float | int
EquityPoint = tuple[datetime, Number]

ZERO = Decimal(0)

# The drawdown fraction is a quotient; fix its precision so the caller's thread context does not.
_DIVISION = Context(prec=28)
# Period returns whose standard deviation is below this are constant up to float rounding (an
# equity curve growing by exactly 1 % a period gives returns that differ in the 17th digit); their
# Sharpe ratio is not a number worth showing.
_MIN_RETURN_STD = 1e-12


def win_rate(trades: Iterable[Number]) -> float | None:
    """The share of trades with a positive net PnL, in [0, 1], or None when there are no trades.

    A break-even trade (net PnL exactly zero) counts as a trade and not as a win.
    """
    pnls = _decimals("trade", trades)
    if not pnls:
        return None
    return sum(1 for pnl in pnls if pnl > 0) / len(pnls)


def profit_factor(trades: Iterable[Number]) -> float | None:
    """Gross profit over gross loss (both positive amounts).

    Returns ``math.inf`` when there are profits and no losses, ``0.0`` when there are losses and
    no profits, and None when there are no trades or every trade broke even (0 / 0).
    """
    pnls = _decimals("trade", trades)
    gross_profit, gross_loss = _gross(pnls)
    if gross_loss == 0:
        return math.inf if gross_profit > 0 else None
    return float(_DIVISION.divide(gross_profit, gross_loss))


def period_returns(equity_curve: Sequence[EquityPoint]) -> list[float]:
    """The simple return of each period, ``equity[i] / equity[i - 1] - 1``, oldest first.

    Raises ``ValueError`` when the timestamps are not aware and strictly increasing or an equity
    is not finite. A return from a non-positive equity is not defined; ``sharpe_ratio`` turns
    that into None, this function raises ``ValueError``.
    """
    points = _curve(equity_curve)
    returns = []
    for (_, previous), (_, current) in pairwise(points):
        if previous <= 0:
            raise ValueError(f"a return from a non-positive equity ({previous}) is not defined")
        returns.append(float(_DIVISION.divide(current, previous)) - 1.0)
    return returns


def sharpe_ratio(equity_curve: Sequence[EquityPoint], periods_per_year: float) -> float | None:
    """The annualised Sharpe ratio of the curve's period returns, with a risk-free rate of zero.

    ``mean(r) / stdev(r) * sqrt(periods_per_year)`` with the sample standard deviation
    (``n - 1``). The curve is taken to be sampled at a regular interval of
    ``1 / periods_per_year`` years (hourly snapshots of a market open around the clock:
    ``24 * 365``); irregular samples bias the figure and are the caller's to resample.

    Returns None with fewer than 2 returns, when the returns do not vary (a ratio over a zero
    deviation is not a number), or when an equity before the last is not positive. Raises
    ``ValueError`` for a non-positive ``periods_per_year`` and as ``period_returns`` does.
    """
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    points = _curve(equity_curve)
    if any(equity <= 0 for _, equity in points[:-1]):
        return None
    returns = period_returns(points)
    if len(returns) < 2:
        return None
    mean = math.fsum(returns) / len(returns)
    std = math.sqrt(math.fsum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    if std < _MIN_RETURN_STD:
        return None
    return mean / std * math.sqrt(periods_per_year)


def max_drawdown(
    equity_curve: Sequence[EquityPoint],
) -> tuple[Decimal, datetime | None, datetime | None]:
    """The largest fall from a running peak: ``(fraction, peak_ts, trough_ts)``.

    The fraction is ``(peak - trough) / peak`` as a Decimal in [0, 1] for a non-negative curve,
    the definition the risk module applies to its drawdown limit. The peak is the last time the
    curve stood at its running maximum before the trough (a curve that climbs back to a peak has
    recovered; the next fall is measured from there). Of equal falls the earliest is reported.
    A peak that is not positive has no drawdown to measure. Returns ``(0, None, None)`` when the
    curve never falls (including an empty or one-point curve). Raises ``ValueError`` as
    ``period_returns`` does for timestamps and values.
    """
    points = _curve(equity_curve)
    worst = ZERO
    worst_peak_ts: datetime | None = None
    worst_trough_ts: datetime | None = None
    peak: Decimal | None = None
    peak_ts: datetime | None = None
    for ts, equity in points:
        if peak is None or equity >= peak:
            peak, peak_ts = equity, ts
            continue
        if peak <= 0:
            continue
        drawdown = _DIVISION.divide(peak - equity, peak)
        if drawdown > worst:
            worst, worst_peak_ts, worst_trough_ts = drawdown, peak_ts, ts
    return worst, worst_peak_ts, worst_trough_ts


@dataclass(frozen=True, slots=True)
class PerformanceSummary:
    """Performance over a set of closed trades and an equity curve; see ``summarize``.

    ``gross_loss`` is a positive amount. Fields that are not defined for the input are None
    (see the functions of this module); ``max_drawdown`` is 0 when the curve never fell.
    """

    trade_count: int
    win_count: int
    loss_count: int
    win_rate: float | None
    gross_profit: Decimal
    gross_loss: Decimal
    net_pnl: Decimal
    profit_factor: float | None
    sharpe_ratio: float | None
    periods_per_year: float
    max_drawdown: Decimal
    max_drawdown_peak_at: datetime | None
    max_drawdown_trough_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        """A dict that ``json.dumps(..., allow_nan=False)`` accepts.

        Decimals become strings (no binary rounding on the way to the browser), datetimes ISO
        8601 strings, and an infinite profit factor the string ``"Infinity"`` (strict JSON has no
        infinity; JavaScript's ``Number("Infinity")`` reads it back).
        """
        return {
            "trade_count": self.trade_count,
            "win_count": self.win_count,
            "loss_count": self.loss_count,
            "win_rate": self.win_rate,
            "gross_profit": str(self.gross_profit),
            "gross_loss": str(self.gross_loss),
            "net_pnl": str(self.net_pnl),
            "profit_factor": _json_ratio(self.profit_factor),
            "sharpe_ratio": self.sharpe_ratio,
            "periods_per_year": self.periods_per_year,
            "max_drawdown": str(self.max_drawdown),
            "max_drawdown_peak_at": _json_ts(self.max_drawdown_peak_at),
            "max_drawdown_trough_at": _json_ts(self.max_drawdown_trough_at),
        }


def summarize(
    trades: Iterable[Number],
    equity_curve: Sequence[EquityPoint],
    periods_per_year: float,
) -> PerformanceSummary:
    """Every statistic of this module over the same trades and curve, as one summary.

    Raises ``ValueError`` for a non-finite trade PnL and as ``sharpe_ratio`` and ``max_drawdown``
    do.
    """
    pnls = _decimals("trade", trades)
    points = _curve(equity_curve)
    gross_profit, gross_loss = _gross(pnls)
    drawdown, peak_ts, trough_ts = max_drawdown(points)
    return PerformanceSummary(
        trade_count=len(pnls),
        win_count=sum(1 for pnl in pnls if pnl > 0),
        loss_count=sum(1 for pnl in pnls if pnl < 0),
        win_rate=win_rate(pnls),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        net_pnl=gross_profit - gross_loss,
        profit_factor=profit_factor(pnls),
        sharpe_ratio=sharpe_ratio(points, periods_per_year),
        periods_per_year=periods_per_year,
        max_drawdown=drawdown,
        max_drawdown_peak_at=peak_ts,
        max_drawdown_trough_at=trough_ts,
    )


def _gross(pnls: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    # Decimal addition of ledger amounts is exact at any realistic size; sum() starts from int 0.
    gross_profit = sum((pnl for pnl in pnls if pnl > 0), ZERO)
    gross_loss = -sum((pnl for pnl in pnls if pnl < 0), ZERO)
    return gross_profit, gross_loss


def as_decimal(name: str, value: object) -> Decimal:
    """A statistic input as an exact Decimal: Decimals and ints as they are, a float at its
    shortest repr; refuses booleans, other types and non-finite values (ValueError)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, numbers.Integral):
        number = Decimal(int(value))
    elif isinstance(value, numbers.Real):
        # The shortest repr, so 0.1 is Decimal("0.1") and not the binary 0.1000000000000000055...
        number = Decimal(repr(float(value)))
    else:
        raise ValueError(f"{name} must be a Decimal, float or int, got {value!r}")
    if not number.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _decimals(name: str, values: Iterable[object]) -> list[Decimal]:
    return [as_decimal(name, value) for value in values]


def _curve(equity_curve: Sequence[EquityPoint]) -> list[tuple[datetime, Decimal]]:
    points = [(ts, as_decimal("equity", equity)) for ts, equity in equity_curve]
    for ts, _ in points:
        if not isinstance(ts, datetime) or ts.utcoffset() is None:
            raise ValueError(f"equity timestamps must be aware datetimes, got {ts!r}")
    for (earlier, _), (later, _) in pairwise(points):
        if not later > earlier:
            raise ValueError(f"equity timestamps must strictly increase: {earlier} then {later}")
    return points


def _json_ratio(value: float | None) -> float | str | None:
    if value is not None and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _json_ts(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
