"""What fills do to the quote balance: one fill's cash flow and an exact total over many."""

from __future__ import annotations

import decimal
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from trading.ledger.book import Side, cash_flow, total_cash_flow


def test_a_buy_pays_its_notional_and_its_fee():
    assert cash_flow(Side.BUY, D("0.5"), D("60000"), D("30")) == D("-30030")


def test_a_sell_brings_its_notional_in_less_its_fee():
    assert cash_flow("SELL", D("0.5"), D("60000"), D("30")) == D("29970")


def test_the_total_of_a_round_trip_is_its_profit_less_both_fees():
    trades = [("BUY", D("2"), D("100"), D("0.2")), ("SELL", D("2"), D("110"), D("0.22"))]
    assert total_cash_flow(trades) == D("20") - D("0.42")


def test_no_fills_move_no_cash():
    assert total_cash_flow([]) == 0


def test_the_total_keeps_every_digit_whatever_the_callers_context():
    # A notional of 29 digits: the default context (28) would round it, 3 digits almost anything.
    trades = [("BUY", D("1234.5678901234"), D("98765.4321098765"), D("0.0000121932631"))]
    with decimal.localcontext(decimal.Context(prec=60)):
        exact = -(D("1234.5678901234") * D("98765.4321098765")) - D("0.0000121932631")
    with decimal.localcontext(decimal.Context(prec=3)):
        total = total_cash_flow(trades)
    assert total == exact
    assert len(total.as_tuple().digits) > 28


rows = st.lists(
    st.tuples(
        st.sampled_from(["BUY", "SELL"]),
        st.decimals(min_value=D("0.0000000001"), max_value=D("100000"), places=10),
        st.decimals(min_value=D("0.0000000001"), max_value=D("1000000"), places=10),
        st.decimals(min_value=D("0"), max_value=D("1000"), places=10),
    ),
    max_size=40,
)


@given(rows, st.randoms())
def test_a_running_total_kept_fill_by_fill_equals_the_total_worked_out_again(fills, random):
    running = D(0)
    arrival = list(fills)
    random.shuffle(arrival)  # fills recorded in another order than the ledger lists them
    for fill in arrival:
        running = total_cash_flow([fill], start=running)
    assert running == total_cash_flow(fills)


def test_a_total_adds_to_where_it_starts():
    assert total_cash_flow([("SELL", D("1"), D("10"), D("0.01"))], start=D("-5")) == D("4.99")
