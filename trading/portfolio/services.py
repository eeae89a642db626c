"""The portfolio of an account: cash, equity, exposure and PnL, from the ledger and the marks."""

from __future__ import annotations

from decimal import Decimal

from trading.models import Account
from trading.risk import services as risk

ZERO = Decimal("0")


def portfolio_summary(account: Account, marks: dict[str, Decimal]) -> dict:
    positions = risk.open_positions(account)
    exposure = {}
    unrealized = ZERO
    for position in positions:
        mark = marks.get(position.symbol, position.average_entry_price)
        exposure[position.symbol] = str(abs(position.quantity * mark))
        unrealized += position.unrealized_pnl(mark)
    cash = risk.account_cash(account)
    equity = cash + risk.market_value(positions, marks)
    realized = sum((p.net_realized_pnl for p in account.positions.all()), ZERO)
    return {
        "account": account.name,
        "venue": account.venue,
        "starting_cash": str(account.starting_cash),
        "cash": str(cash),
        "equity": str(equity),
        "peak_equity": str(max(account.peak_equity, equity)),
        "exposure": exposure,
        "total_exposure": str(sum((Decimal(v) for v in exposure.values()), ZERO)),
        "open_positions": len(positions),
        "realized_pnl": str(realized),
        "unrealized_pnl": str(unrealized),
        "daily_pnl": str(risk.daily_realized_pnl(account) + unrealized),
        "daily_trades": risk.daily_trades(account),
        "trading_state": str(risk.current_state(account)),
        "equity_curve": [
            {"ts": snap.ts.isoformat(), "equity": str(snap.equity)}
            for snap in reversed(account.equity.all()[:200])
        ],
    }
