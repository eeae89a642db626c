"""A backtest's report: what a run did and how it did, beside buying and holding.

Statistics of ``trading.analytics.performance`` where it has them (win rate, profit factor,
Sharpe, maximum drawdown on the sampled curve); Sortino, Calmar, expectancy and exposure here.
Ratios are annualised from the sampling period of the equity curve (an hour by default, for a
market open around the clock). The maximum drawdown is the engine's, measured on every step, not
only on the sampled curve. Not defined is None, never zero.
"""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from typing import Any

from trading.analytics.performance import period_returns, profit_factor, sharpe_ratio, win_rate
from trading.backtest.engine import Result

YEAR = timedelta(days=365)


def sortino_ratio(returns: list[float], periods_per_year: float) -> float | None:
    """Mean return over the downside deviation (returns below zero, over all periods),
    annualised; None with fewer than 2 returns or no downside."""
    if len(returns) < 2:
        return None
    downside = math.sqrt(math.fsum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    if downside < 1e-12:
        return None
    return math.fsum(returns) / len(returns) / downside * math.sqrt(periods_per_year)


def build_report(result: Result) -> dict[str, Any]:
    """The report as JSON: money as strings, ratios as floats or None."""
    settings = result.settings
    curve = result.equity_curve
    periods_per_year = YEAR / settings.sample_every
    start_equity = settings.starting_cash
    final = result.final_equity if curve else start_equity
    total_return = float(final / start_equity - 1) if start_equity else None
    span = (result.end - result.start) if result.start and result.end else timedelta(0)
    annual = None
    if total_return is not None and span > timedelta(0) and final > 0:
        annual = (float(final / start_equity)) ** (YEAR / span) - 1
    returns = period_returns(curve) if len(curve) > 1 and all(e > 0 for _, e in curve) else []
    drawdown = float(result.max_drawdown)
    pnls = [t.net_pnl for t in result.trades]
    fees = sum((f.fee for f in result.fills), Decimal(0))
    hold = {s: float(result.last_close[s] / result.first_close[s] - 1) for s in result.first_close}
    stamps = [ts.isoformat() for ts, _ in curve]
    return {
        "bars": result.bars,
        "steps": result.steps,
        "start": result.start.isoformat() if result.start else None,
        "end": result.end.isoformat() if result.end else None,
        "starting_cash": str(start_equity),
        "final_equity": str(final),
        "total_return": total_return,
        "annualised_return": annual,
        "signals": len(result.signals),
        "signals_denied": sum(1 for s in result.signals if s.status == "denied"),
        "orders": len(result.orders),
        "fills": len(result.fills),
        "trades": len(result.trades),
        "fees": str(fees),
        "win_rate": win_rate(pnls),
        "profit_factor": _ratio(profit_factor(pnls)),
        "expectancy": str(sum(pnls, Decimal(0)) / len(pnls)) if pnls else None,
        "sharpe": sharpe_ratio(curve, periods_per_year) if returns else None,
        "sortino": sortino_ratio(returns, periods_per_year),
        "calmar": annual / drawdown if annual is not None and drawdown > 0 else None,
        "max_drawdown": str(result.max_drawdown),
        "exposure": result.steps_in_market / result.steps if result.steps else None,
        "hit_rate": result.hits / result.scored if result.scored else None,
        "liquidations": result.liquidations,
        "hit_horizon_bars": settings.hit_horizon,
        "stated_confidence": _stated_confidence(result),
        "buy_and_hold": {
            "per_symbol": hold,
            "return": sum(hold.values()) / len(hold) if hold else None,
        },
        "equity_curve": [
            [stamp, str(equity)] for stamp, (_, equity) in zip(stamps, curve, strict=True)
        ],
        "drawdown_curve": _drawdowns(curve, stamps),
    }


def _stated_confidence(result: Result) -> str | None:
    stated = {s.confidence for s in result.signals}
    return str(stated.pop()) if len(stated) == 1 else None


def _drawdowns(curve: list[tuple[Any, Decimal]], stamps: list[str]) -> list[list[Any]]:
    peak = None
    out = []
    for stamp, (_, equity) in zip(stamps, curve, strict=True):
        peak = equity if peak is None or equity > peak else peak
        out.append([stamp, float((peak - equity) / peak) if peak > 0 else 0.0])
    return out


def _ratio(value: float | None) -> float | str | None:
    if value is not None and math.isinf(value):
        return "Infinity"
    return value


def trades_csv_rows(result_fills: list[dict[str, Any]]) -> list[list[str]]:
    """The fills as CSV rows, a header first."""
    header = ["ts", "symbol", "side", "quantity", "price", "fee", "realized_pnl", "purpose"]
    return [header, *([str(f.get(k, "")) for k in header] for f in result_fills)]
