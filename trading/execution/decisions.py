"""How a signal becomes an order's quantity, or a denial before the risk checks: the one
decision live paper trading (``services.process_signal``) and the backtest
(``trading.backtest.engine``) both make.

Pure: values in, a quantity or a reason out.
"""

from __future__ import annotations

from decimal import Decimal

from trading.marketdata.symbols import SymbolRules
from trading.risk.reasons import Reason

ZERO = Decimal(0)


def order_quantity(
    *,
    close_position: bool,
    quantity: Decimal | None,
    notional: Decimal | None,
    held: Decimal,
    price: Decimal | None,
    rules: SymbolRules | None,
) -> Decimal | None:
    """The order's quantity: what the position holds (``held``, signed or not) for a signal
    that closes it, rounded down to the market step; else the given ``quantity``; else
    ``notional`` at ``price`` rounded down to the market step. None (or zero) when there is
    nothing to trade or no price to size at."""
    if close_position:
        amount = abs(held)
        if rules is not None:
            amount = rules.round_quantity(amount, market=True)
        return amount or None
    if quantity is not None:
        return quantity
    if price is None or notional is None:
        return None
    amount = notional / price
    if rules is not None:
        amount = rules.round_quantity(amount, market=True)
    return amount


def sizing_denial(
    *, symbol: str, close_position: bool, notional: Decimal | None, rules: SymbolRules | None
) -> tuple[Reason, str]:
    """Why a signal sized to nothing is denied: no position to close, a notional below the
    exchange's minimum, or one that buys less than a step."""
    if close_position:
        return Reason.INSUFFICIENT_BALANCE, f"no {symbol} position to close"
    if rules is not None and notional is not None and notional < rules.min_notional:
        return (
            Reason.MIN_NOTIONAL,
            f"notional {notional} < exchange minimum {rules.min_notional}",
        )
    return Reason.LOT_SIZE, f"notional {notional} buys less than one step"
