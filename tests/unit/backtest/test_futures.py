"""Backtests of a USDⓈ-M futures account: margin held, the wallet moved by realized PnL less
fees, shorts, and liquidation on the bar that takes the margin balance below maintenance."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from tests.support.backtests import Scripted, roomy_limits, settings
from trading.backtest.engine import Backtest, steps_of
from trading.ledger import futures
from trading.ledger.book import AccountKind, PositionState
from trading.marketdata.klines import load_bundled_bars
from trading.strategies.base import SignalIntent

TEMPLATE = load_bundled_bars("BTCUSDT")[0]
STEP = timedelta(minutes=5)


def falling_bars(count: int = 60, start: str = "60000", drop: str = "0.995") -> list:
    """BTCUSDT bars whose close falls by a fixed share each bar."""
    bars, close = [], Decimal(start)
    for i in range(count):
        bars.append(replace(TEMPLATE, open_time=TEMPLATE.open_time + i * STEP,
                            close_time=TEMPLATE.close_time + i * STEP, open=close, high=close,
                            low=close, close=close))  # fmt: skip
        close = (close * Decimal(drop)).quantize(Decimal("0.01"))
    return bars


def signal(side: str, notional: str | None = None) -> SignalIntent:
    if notional is None:
        return SignalIntent("BTCUSDT", side, Decimal("0.9"), close_position=True)
    return SignalIntent("BTCUSDT", side, Decimal("0.9"), notional=Decimal(notional))


def run_futures(script, bars, *, cash: str, leverage: int):
    config = settings(kind=AccountKind.FUTURES, leverage=leverage, starting_cash=Decimal(cash),
                      limits=roomy_limits(max_leverage=125))  # fmt: skip
    return Backtest(Scripted(script), config).run(steps_of([bars]))


def wallet_after(cash: str, fills) -> Decimal:
    return Decimal(cash) + sum((f.realized_pnl - f.fee for f in fills), Decimal(0))


def test_a_20x_long_on_falling_bars_is_liquidated_at_its_liquidation_price():
    bars = falling_bars()
    result = run_futures({("BTCUSDT", 2): signal("BUY", "20000")}, bars, cash="2000",
                         leverage=20)  # fmt: skip
    opened, liquidated = result.fills
    assert opened.side == "BUY"
    # The liquidation price of the position as it opened, from the ledger's arithmetic.
    state = PositionState("BTCUSDT", quantity=opened.quantity, avg_entry_price=opened.price,
                          cost_basis=opened.quantity * opened.price)  # fmt: skip
    holding = futures.Holding(state, 20, futures.bundled_brackets()["BTCUSDT"], opened.price)
    price = futures.liquidation_price(holding, Decimal(2000) - opened.fee)
    first_below = next(b for b in bars if b.close <= price)
    assert bars[2].close > price
    order = result.orders[liquidated.order_index]
    assert (order.purpose, order.status, order.side) == ("liquidation", "FILLED", "SELL")
    assert liquidated.ts == first_below.close_time
    assert liquidated.price == first_below.close and liquidated.quantity == opened.quantity
    assert liquidated.fee == liquidated.quantity * liquidated.price * Decimal("0.001")
    assert result.liquidations == 1
    # Cross margin: the whole wallet backed the position, and what is left of it, moved by
    # realized PnL and fees only, is below the maintenance margin it was liquidated under.
    assert result.final_equity == wallet_after("2000", result.fills)
    maintenance = holding.brackets.maintenance_margin(liquidated.quantity * liquidated.price)
    assert 0 < result.final_equity < maintenance


def test_a_short_profits_on_falling_bars_and_the_wallet_moves_by_realized_pnl_less_fees():
    bars = falling_bars()
    script = {("BTCUSDT", 2): signal("SELL", "8000"), ("BTCUSDT", 30): signal("BUY")}
    result = run_futures(script, bars, cash="2000", leverage=5)
    opened, closed = result.fills
    assert (opened.side, closed.side) == ("SELL", "BUY")  # a SELL from flat opens a short
    assert closed.quantity == opened.quantity
    assert closed.realized_pnl == (opened.price - closed.price) * opened.quantity > 0
    assert result.liquidations == 0
    assert result.final_equity == wallet_after("2000", result.fills) > Decimal(2000)


def test_equity_while_short_is_the_wallet_plus_unrealized_pnl():
    bars = falling_bars(20)
    result = run_futures({("BTCUSDT", 2): signal("SELL", "8000")}, bars, cash="2000",
                         leverage=5)  # fmt: skip
    (opened,) = result.fills
    unrealized = (opened.price - bars[-1].close) * opened.quantity
    assert result.final_equity == Decimal(2000) - opened.fee + unrealized


def test_an_order_beyond_the_available_margin_is_denied_for_margin():
    bars = falling_bars(10)
    result = run_futures({("BTCUSDT", 2): signal("BUY", "20000")}, bars, cash="1000",
                         leverage=10)  # fmt: skip
    assert [(s.status, s.reason) for s in result.signals] == [("denied", "INSUFFICIENT_MARGIN")]


def test_round_trips_beyond_the_wallets_cash_keep_trading_on_margin():
    bars = falling_bars(20)
    script = {("BTCUSDT", 2): signal("BUY", "8000"), ("BTCUSDT", 4): signal("SELL"),
              ("BTCUSDT", 6): signal("BUY", "8000"), ("BTCUSDT", 8): signal("SELL")}  # fmt: skip
    result = run_futures(script, bars, cash="2000", leverage=5)
    assert [(o.side, o.status) for o in result.orders] == [
        ("BUY", "FILLED"),
        ("SELL", "FILLED"),
    ] * 2
    assert result.final_equity == wallet_after("2000", result.fills) < Decimal(2000)
