"""Trades whose commission is paid in the base asset, or in a third one: the book holds what the
exchange holds, closes to exactly zero on dust, and its PnL and fees stay its cash flows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.ledger.book import (
    Fill,
    PositionChange,
    PositionState,
    Side,
    apply_fill,
    apply_fills,
    cash_flow,
    fill_from_trade,
    total_cash_flow,
    unrealized_pnl,
)

T0 = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
BUY, SELL = Side.BUY, Side.SELL
# BTCUSDT's LOT_SIZE step (MARKET_LOT_SIZE sets none).
STEP = D("0.00001")


def trade(side: Side, quantity: str, price: str, commission: str = "0", asset: str = "USDT"):
    """The book's fill for a BTCUSDT trade as Binance reports it."""
    return fill_from_trade(
        side,
        D(quantity),
        D(price),
        D(commission),
        asset,
        base_asset="BTC",
        quote_asset="USDT",
        ts=T0,
    )


def book(*fills: Fill, lot_step: D = D(0)) -> PositionState:
    state, _ = apply_fills(PositionState("BTCUSDT"), fills, lot_step=lot_step)
    return state


def cash(*fills: Fill) -> D:
    return total_cash_flow((f.side, f.quantity, f.price, f.fee) for f in fills)


# -- what a trade books ----------------------------------------------------------------------------


def test_a_buy_paying_its_commission_in_btc_holds_the_btc_it_received():
    bought = trade(BUY, "0.001", "60000", "0.000001", "BTC")

    state = book(bought)

    # Binance credits 0.001 - 0.000001 BTC and takes 0.001 x 60 000 USDT, nothing more.
    assert state.quantity == D("0.000999")
    assert cash_flow(bought.side, bought.quantity, bought.price, bought.fee) == D("-60")
    # The commission is a fee worth 0.000001 x 60 000, not part of the entry cost.
    assert state.fees_paid == D("0.06")
    assert state.cost_basis == D("59.94")
    assert state.avg_entry_price == D("60000")
    assert unrealized_pnl(state, D("61000")) == D("0.999")  # 0.000999 x 1 000


def test_selling_all_it_holds_closes_at_zero_with_the_pnl_and_fees_of_the_cash():
    bought = trade(BUY, "0.001", "60000", "0.000001", "BTC")
    sold = trade(SELL, "0.000999", "61000", "0.060939")

    state, effect = apply_fill(book(bought), sold)

    assert effect.change is PositionChange.CLOSED
    assert state.is_flat
    assert state.realized_pnl == D("0.999")  # 0.000999 x (61 000 - 60 000)
    assert state.fees_paid == D("0.06") + D("0.060939")
    # -60 USDT out, 60.939 - 0.060939 in: the round trip's cash is its net PnL
    assert state.net_realized_pnl == cash(bought, sold) == D("0.878061")


def test_a_sale_on_the_lot_step_closes_the_long_and_writes_off_the_dust():
    bought = trade(BUY, "0.001", "60000", "0.000001", "BTC")
    # 0.000999 is off the 0.00001 step: the most an order can sell is 0.00099.
    sold = trade(SELL, "0.00099", "61000", "0.06039")

    state, effect = apply_fill(book(bought), sold, lot_step=STEP)

    assert effect.change is PositionChange.CLOSED
    assert state.is_flat
    # 0.00099 x 61 000 = 60.39 for the whole entry cost of 59.94: the 0.000009 BTC left on the
    # exchange, which no order can sell, is worth nothing to the book.
    assert effect.realized_pnl == D("0.45")
    assert state.fees_paid == D("0.06") + D("0.06039")
    assert state.net_realized_pnl == cash(bought, sold)


def test_without_a_lot_step_the_dust_stays_open():
    bought = trade(BUY, "0.001", "60000", "0.000001", "BTC")

    state, effect = apply_fill(book(bought), trade(SELL, "0.00099", "61000"))

    assert effect.change is PositionChange.REDUCED
    assert state.quantity == D("0.000009")


def test_a_sale_that_leaves_a_whole_step_or_more_only_reduces():
    long = book(trade(BUY, "0.001", "60000", "0.000001", "BTC"))

    state, effect = apply_fill(long, trade(SELL, "0.00098", "61000"), lot_step=STEP)

    assert effect.change is PositionChange.REDUCED
    assert state.quantity == D("0.000019")


def test_a_sell_paying_its_commission_in_btc_gives_up_that_btc_too():
    sold = trade(SELL, "0.001", "61000", "0.000001", "BTC")

    assert (sold.quantity, sold.fee) == (D("0.001001"), D("0.061"))
    # Binance pays 0.001 x 61 000 USDT for it, the commission is not also taken in USDT.
    assert cash_flow(sold.side, sold.quantity, sold.price, sold.fee) == D("61")


def test_such_a_sell_of_the_whole_long_closes_it_at_zero_not_short_by_the_commission():
    bought = trade(BUY, "0.001", "60000", "0.06")
    sold = trade(SELL, "0.001", "61000", "0.000001", "BTC")

    state, effect = apply_fill(book(bought), sold, lot_step=STEP)

    assert effect.change is PositionChange.CLOSED
    assert state.is_flat
    # The commission came out of BTC the book no longer counts (dust written off before); the
    # sale realizes all it moved: 0.001001 x 61 000 - 60.
    assert effect.realized_pnl == D("1.061")
    assert state.net_realized_pnl == cash(bought, sold) == D("0.94")
    # Without the step the book would go short by the commission.
    assert book(bought, sold).quantity == D("-0.000001")


def test_a_commission_in_bnb_leaves_the_quantity_and_the_cash_as_traded():
    bought = trade(BUY, "0.001", "60000", "0.00005", "BNB")

    assert bought == Fill(BUY, D("0.001"), D("60000"), D(0), T0)
    assert book(bought).quantity == D("0.001")
    assert cash(bought) == D("-60")


@pytest.mark.parametrize("asset", ["USDT", ""])
def test_a_commission_in_the_quote_asset_is_the_fee_of_the_trade_as_traded(asset):
    assert trade(BUY, "0.001", "60000", "0.06", asset) == Fill(
        BUY, D("0.001"), D("60000"), D("0.06"), T0
    )


def test_a_short_keeps_its_dust_as_a_debt():
    short = book(trade(SELL, "1", "100"))

    state, effect = apply_fill(short, trade(BUY, "1", "90", "0.0000001", "BTC"), lot_step=STEP)

    assert effect.change is PositionChange.REDUCED
    assert state.quantity == D("-0.0000001")


def test_a_buy_cannot_pay_all_it_bought_in_commission():
    with pytest.raises(ValueError, match="commission"):
        trade(BUY, "0.001", "60000", "0.001", "BTC")


def test_a_negative_commission_or_lot_step_is_refused():
    with pytest.raises(ValueError):
        trade(BUY, "0.001", "60000", "-0.01")
    with pytest.raises(ValueError):
        apply_fill(PositionState("BTCUSDT"), trade(BUY, "1", "1"), lot_step=D("-1"))


# -- properties ------------------------------------------------------------------------------------

quantities = st.decimals(min_value=D("0.001"), max_value=D("10"), places=5)
prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
commissions = st.decimals(min_value=D("0"), max_value=D("0.00099"), places=8)
trades = st.lists(
    st.tuples(
        st.sampled_from(Side),
        quantities,
        prices,
        commissions,
        st.sampled_from(["BTC", "USDT", "BNB"]),
    ),
    max_size=30,
)


@given(trades, prices)
def test_the_book_holds_the_exchanges_balances_and_its_pnl_is_their_change(raw, mark):
    """Worked out from the trades as Binance settles them, independently of the book: the base
    held, and the quote, which moves by the notional and a commission paid in it."""
    base = quote = D(0)
    for side, quantity, price, commission, asset in raw:
        sign = 1 if side is BUY else -1
        base += sign * quantity - (commission if asset == "BTC" else 0)
        quote += -sign * quantity * price - (commission if asset == "USDT" else 0)
    fills = [trade(side, str(q), str(p), str(c), a) for side, q, p, c, a in raw]

    state = book(*fills)

    assert state.quantity == base
    assert cash(*fills) == quote
    # What the book made, realized and marked, is what the balances gained at the mark (less
    # nothing for BNB, which the book does not hold).
    assert state.net_realized_pnl + unrealized_pnl(state, mark) == quote + base * mark
