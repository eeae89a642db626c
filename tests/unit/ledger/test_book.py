"""Position accounting from fills: averages, realized and unrealized PnL, fees, exits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.ledger.book import (
    ExitReason,
    Fill,
    FillEffect,
    PositionChange,
    PositionState,
    Side,
    apply_fill,
    apply_fills,
    equity,
    exit_trigger,
    realized_on_day,
    unrealized_pnl,
)

T0 = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
BUY, SELL = Side.BUY, Side.SELL


def fill(side: Side, quantity: str, price: str, fee: str = "0", ts: datetime = T0) -> Fill:
    return Fill(side=side, quantity=D(quantity), price=D(price), fee=D(fee), ts=ts)


def book(*fills: Fill, symbol: str = "BTCUSDT") -> PositionState:
    state, _ = apply_fills(PositionState(symbol), fills)
    return state


# -- opening and increasing ------------------------------------------------------------------------


def test_it_opens_a_long_at_the_fill_price():
    state, effect = apply_fill(PositionState("BTCUSDT"), fill(BUY, "1", "100", fee="0.1"))

    assert state.quantity == D("1")
    assert state.avg_entry_price == D("100")
    assert state.opened_at == T0
    assert state.realized_pnl == 0
    assert state.fees_paid == D("0.1")
    assert effect == FillEffect(PositionChange.OPENED, D(0), D(0), D("1"))


def test_it_averages_entry_on_increase():
    later = T0 + timedelta(minutes=5)
    first, _ = apply_fill(PositionState("BTCUSDT"), fill(BUY, "1", "100"))

    state, effect = apply_fill(first, fill(BUY, "1", "110", ts=later))

    # (1 x 100 + 1 x 110) / 2 = 105
    assert state.avg_entry_price == D("105")
    assert state.quantity == D("2")
    assert effect.change is PositionChange.INCREASED
    assert effect.realized_pnl == 0
    assert state.opened_at == T0  # the position is as old as its first fill


def test_it_weights_the_average_by_quantity():
    # (3 x 100 + 1 x 120) / 4 = 420 / 4 = 105
    assert book(fill(BUY, "3", "100"), fill(BUY, "1", "120")).avg_entry_price == D("105")


# -- reducing, closing -----------------------------------------------------------------------------


def test_it_realizes_a_reduction_against_the_average_and_keeps_the_average():
    long = book(fill(BUY, "1", "100"), fill(BUY, "1", "110"))  # 2 @ 105

    state, effect = apply_fill(long, fill(SELL, "1.5", "120"))

    # 1.5 x (120 - 105) = 1.5 x 15 = 22.5
    assert effect == FillEffect(PositionChange.REDUCED, D("22.5"), D("1.5"), D(0))
    assert state.realized_pnl == D("22.5")
    assert state.quantity == D("0.5")
    assert state.avg_entry_price == D("105")
    assert state.opened_at == T0


def test_it_closes_to_flat_and_forgets_the_entry():
    half = book(fill(BUY, "1", "100"), fill(BUY, "1", "110"), fill(SELL, "1.5", "120"))

    state, effect = apply_fill(half, fill(SELL, "0.5", "90"))

    # 0.5 x (90 - 105) = -7.5; with the earlier 22.5 the book has realized 15
    assert effect == FillEffect(PositionChange.CLOSED, D("-7.5"), D("0.5"), D(0))
    assert state.realized_pnl == D("15")
    assert state.is_flat
    assert state.avg_entry_price == 0
    assert state.opened_at is None
    assert unrealized_pnl(state, D("1000")) == 0


def test_it_realizes_exactly_when_the_average_does_not_terminate():
    long = book(fill(BUY, "1", "100"), fill(BUY, "2", "101"))
    # 302 / 3 = 100.666..., rounded to 28 digits
    assert long.avg_entry_price == D("100.6666666666666666666666667")

    reduced, first = apply_fill(long, fill(SELL, "1", "102"))
    flat, second = apply_fill(reduced, fill(SELL, "2", "102"))

    # 1 x (102 - 100.666...) = 1.333..., to the 18 places the released cost is kept to
    assert first.realized_pnl == D("1.333333333333333333")
    # The round trip: sold 3 x 102 = 306, bought 100 + 202 = 302, so exactly 4, not 3.999...
    assert flat.realized_pnl == D("4")
    assert second.realized_pnl == D("2.666666666666666667")


# -- shorts and flips ------------------------------------------------------------------------------


def test_it_accounts_for_a_short_from_sale_to_buy_back():
    short = book(fill(SELL, "2", "50"), fill(SELL, "1", "56"))
    # (2 x 50 + 1 x 56) / 3 = 156 / 3 = 52
    assert short.quantity == D("-3")
    assert short.avg_entry_price == D("52")

    covered, effect = apply_fill(short, fill(BUY, "1", "40"))
    # a short gains as the price falls: 1 x (52 - 40) = 12
    assert effect == FillEffect(PositionChange.REDUCED, D("12"), D("1"), D(0))
    assert covered.quantity == D("-2")
    assert covered.avg_entry_price == D("52")

    flat, effect = apply_fill(covered, fill(BUY, "2", "60"))
    # 2 x (52 - 60) = -16; 12 - 16 = -4 for the whole trade
    assert effect.change is PositionChange.CLOSED
    assert effect.realized_pnl == D("-16")
    assert flat.realized_pnl == D("-4")
    assert flat.is_flat


def test_it_flips_a_long_into_a_short_at_the_fill_price():
    flip_time = T0 + timedelta(hours=1)
    long = book(fill(BUY, "1", "100"))

    state, effect = apply_fill(long, fill(SELL, "3", "120", ts=flip_time))

    # closes the 1 long: 1 x (120 - 100) = 20; opens 3 - 1 = 2 short at 120
    assert effect == FillEffect(PositionChange.FLIPPED, D("20"), D("1"), D("2"))
    assert state.quantity == D("-2")
    assert state.avg_entry_price == D("120")
    assert state.realized_pnl == D("20")
    assert state.opened_at == flip_time


def test_it_flips_a_short_into_a_long():
    short = book(fill(SELL, "2", "120"))

    state, effect = apply_fill(short, fill(BUY, "3", "110"))

    # closes the 2 short: 2 x (120 - 110) = 20; opens 3 - 2 = 1 long at 110
    assert effect == FillEffect(PositionChange.FLIPPED, D("20"), D("2"), D("1"))
    assert state.quantity == D("1")
    assert state.avg_entry_price == D("110")
    # marked at 115 the new long is up 1 x (115 - 110) = 5
    assert unrealized_pnl(state, D("115")) == D("5")


# -- fees ------------------------------------------------------------------------------------------


def test_it_keeps_fees_apart_from_gross_pnl():
    state = book(fill(BUY, "1", "100", fee="0.1"), fill(SELL, "1", "110", fee="0.11"))

    # gross 1 x (110 - 100) = 10; fees 0.1 + 0.11 = 0.21; net 10 - 0.21 = 9.79
    assert state.realized_pnl == D("10")
    assert state.fees_paid == D("0.21")
    assert state.net_realized_pnl == D("9.79")


def test_fees_do_not_move_the_average_entry():
    state = book(fill(BUY, "1", "100", fee="5"), fill(BUY, "1", "110", fee="5"))

    assert state.avg_entry_price == D("105")
    assert state.net_realized_pnl == D("-10")  # a position that has only opened has lost its fees


# -- unrealized and equity -------------------------------------------------------------------------


def test_it_marks_a_long_and_a_short_to_market():
    long = book(fill(BUY, "1", "100"), fill(BUY, "1", "110"), fill(SELL, "1.5", "120"))
    short = book(fill(SELL, "2", "50"), fill(SELL, "1", "56"), fill(BUY, "1", "40"))

    # long 0.5 @ 105 at 130: 0.5 x (130 - 105) = 12.5
    assert unrealized_pnl(long, D("130")) == D("12.5")
    # short 2 @ 52 at 50: 2 x (52 - 50) = 4; at 60: 2 x (52 - 60) = -16
    assert unrealized_pnl(short, D("50")) == D("4")
    assert unrealized_pnl(short, D("60")) == D("-16")


def test_equity_is_cash_plus_positions_at_their_marks():
    btc = book(fill(BUY, "0.5", "60000", fee="30"))
    eth = book(fill(SELL, "2", "3000", fee="6"), symbol="ETHUSDT")
    sol = book(fill(BUY, "10", "150"), fill(SELL, "10", "160"), symbol="SOLUSDT")
    # starting from 10 000: buy BTC 0.5 x 60 000 and fee 30, short ETH 2 x 3 000 and fee 6,
    # SOL round trip -10 x 150 + 10 x 160:
    # 10 000 - 30 000 - 30 + 6 000 - 6 - 1 500 + 1 600 = -13 936
    cash = D("-13936")
    marks = {"BTCUSDT": D("62000"), "ETHUSDT": D("3100")}  # SOL is flat and needs no mark

    # -13 936 + 0.5 x 62 000 - 2 x 3 100 = -13 936 + 31 000 - 6 200 = 10 864, which is the
    # 10 000 put in plus the PnL: SOL +100, fees -36, BTC 0.5 x +2 000, ETH short 2 x -100
    assert equity(cash, [btc, eth, sol], marks) == D("10864")


def test_equity_refuses_an_open_position_without_a_mark():
    with pytest.raises(ValueError, match="no mark price"):
        equity(D("100"), [book(fill(BUY, "1", "10"))], {})


def test_equity_refuses_the_same_symbol_twice():
    position = book(fill(BUY, "1", "10"))
    with pytest.raises(ValueError, match="more than once"):
        equity(D("100"), [position, position], {"BTCUSDT": D("10")})


# -- daily PnL -------------------------------------------------------------------------------------


def test_realized_on_day_counts_realized_less_fees_by_utc_day():
    day1 = datetime(2025, 9, 1, 10, 0, tzinfo=UTC)
    # 01:30 in UTC+2 is 23:30 the previous day in UTC: still 1 September
    late_day1 = datetime(2025, 9, 2, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    day2 = datetime(2025, 9, 2, 0, 0, tzinfo=UTC)
    _, applied = apply_fills(
        PositionState("BTCUSDT"),
        [
            fill(BUY, "2", "100", fee="0.2", ts=day1),  # opens: 0 - 0.2
            fill(SELL, "1", "110", fee="0.11", ts=late_day1),  # 1 x (110 - 100) = 10, - 0.11
            fill(SELL, "1", "95", fee="0.095", ts=day2),  # 1 x (95 - 100) = -5, - 0.095
        ],
    )

    # 1 September: -0.2 + 10 - 0.11 = 9.69; 2 September: -5 - 0.095 = -5.095
    assert realized_on_day(applied, date(2025, 9, 1)) == D("9.69")
    assert realized_on_day(applied, date(2025, 9, 2)) == D("-5.095")
    assert realized_on_day(applied, date(2025, 9, 3)) == 0


def test_realized_on_day_refuses_a_datetime_for_a_day():
    _, applied = apply_fills(PositionState("BTCUSDT"), [fill(BUY, "1", "100", fee="1")])
    with pytest.raises(TypeError):
        realized_on_day(applied, T0)


# -- stop loss and take profit ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mark", "expected"),
    [
        ("94", ExitReason.STOP_LOSS),
        ("95", ExitReason.STOP_LOSS),  # at the stop counts
        ("95.01", None),
        ("119.99", None),
        ("120", ExitReason.TAKE_PROFIT),
        ("125", ExitReason.TAKE_PROFIT),
    ],
)
def test_a_long_stops_below_and_takes_profit_above(mark, expected):
    long = book(fill(BUY, "1", "100"))
    assert exit_trigger(long, D(mark), D("95"), D("120")) == expected


@pytest.mark.parametrize(
    ("mark", "expected"),
    [
        ("56", ExitReason.STOP_LOSS),
        ("55", ExitReason.STOP_LOSS),
        ("54.99", None),
        ("45.01", None),
        ("45", ExitReason.TAKE_PROFIT),
        ("40", ExitReason.TAKE_PROFIT),
    ],
)
def test_a_short_stops_above_and_takes_profit_below(mark, expected):
    short = book(fill(SELL, "1", "50"))
    assert exit_trigger(short, D(mark), D("55"), D("45")) == expected


def test_exit_levels_are_optional_and_returned_as_their_names():
    long = book(fill(BUY, "1", "100"))

    assert exit_trigger(long, D("1"), None, D("120")) is None
    assert exit_trigger(long, D("1000"), D("95"), None) is None
    assert exit_trigger(long, D("90"), D("95"), None) == "STOP_LOSS"
    assert exit_trigger(long, D("130"), None, D("120")) == "TAKE_PROFIT"


def test_the_stop_wins_when_both_levels_are_reached():
    long = book(fill(BUY, "1", "100"))  # a stop trailed above the target
    assert exit_trigger(long, D("110"), D("112"), D("105")) is ExitReason.STOP_LOSS


def test_a_flat_position_never_triggers():
    assert exit_trigger(PositionState("BTCUSDT"), D("1"), D("95"), D("120")) is None


# -- contracts on the values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quantity": D("0")},
        {"quantity": D("-1")},
        {"quantity": 1.5},  # a float
        {"price": D("0")},
        {"price": D("NaN")},
        {"fee": D("-0.1")},
        {"side": "HOLD"},
        {"ts": datetime(2025, 9, 1, 12, 0)},  # naive
    ],
)
def test_a_fill_refuses_nonsense(kwargs):
    values = {"side": BUY, "quantity": D("1"), "price": D("100"), "fee": D("0"), "ts": T0} | kwargs
    with pytest.raises(ValueError):
        Fill(**values)


def test_a_fill_takes_its_side_as_text_and_its_time_in_utc():
    paris = timezone(timedelta(hours=2))
    made = Fill("SELL", D("1"), D("100"), D("0"), datetime(2025, 9, 1, 14, 0, tzinfo=paris))
    assert made.side is Side.SELL
    assert made.ts == T0
    assert made.ts.tzinfo is UTC


def test_a_flat_position_has_no_entry_price():
    with pytest.raises(ValueError, match="flat"):
        PositionState("BTCUSDT", quantity=D(0), avg_entry_price=D("100"))


def test_a_position_loaded_without_its_cost_derives_it_from_the_average():
    loaded = PositionState("BTCUSDT", quantity=D("-2"), avg_entry_price=D("52"), opened_at=T0)

    assert loaded.cost_basis == D("104")  # 2 x 52
    state, effect = apply_fill(loaded, fill(BUY, "2", "60"))
    assert effect.realized_pnl == D("-16")  # 2 x (52 - 60)
    assert state.is_flat


# -- properties ------------------------------------------------------------------------------------

quantities = st.decimals(min_value=D("0.0001"), max_value=D("100"), places=4)
prices = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
fees = st.decimals(min_value=D("0"), max_value=D("10"), places=6)
fills = st.lists(
    st.builds(Fill, st.sampled_from(Side), quantities, prices, fees, st.just(T0)),
    max_size=30,
)


def signed(f: Fill) -> D:
    return f.quantity if f.side is BUY else -f.quantity


def cash_flow(trades: list[Fill]) -> D:
    """What the trades did to the quote balance before fees: sells bring in, buys pay out."""
    return sum(
        (f.quantity * f.price if f.side is SELL else -f.quantity * f.price for f in trades), D(0)
    )


@given(fills, prices, fees)
def test_a_book_that_ends_flat_realizes_exactly_its_cash_flow(trades, close_price, close_fee):
    held = sum((signed(f) for f in trades), D(0))
    if held:
        # close whatever is left, so the sequence ends flat
        trades = [*trades, Fill(SELL if held > 0 else BUY, abs(held), close_price, close_fee, T0)]

    state = book(*trades)

    assert state.is_flat
    assert state.realized_pnl == cash_flow(trades)
    assert state.net_realized_pnl == cash_flow(trades) - sum((f.fee for f in trades), D(0))


@given(fills, prices)
def test_realized_plus_unrealized_is_the_cash_flow_marked_to_market(trades, mark):
    held = sum((signed(f) for f in trades), D(0))

    state = book(*trades)

    assert state.quantity == held
    assert state.realized_pnl + unrealized_pnl(state, mark) == cash_flow(trades) + held * mark


@given(fills, prices, st.decimals(min_value=D("0"), max_value=D("1000000"), places=2))
def test_equity_is_the_starting_cash_plus_net_pnl(trades, mark, starting_cash):
    state = book(*trades)
    cash = starting_cash + cash_flow(trades) - sum((f.fee for f in trades), D(0))

    net_pnl = state.net_realized_pnl + unrealized_pnl(state, mark)
    assert equity(cash, [state], {"BTCUSDT": mark}) == starting_cash + net_pnl


@given(fills)
def test_the_effects_account_for_every_fill(trades):
    _, applied = apply_fills(PositionState("BTCUSDT"), trades)

    for f, effect in applied:
        assert effect.closed_quantity + effect.opened_quantity == f.quantity
    assert sum((e.realized_pnl for _, e in applied), D(0)) == book(*trades).realized_pnl
