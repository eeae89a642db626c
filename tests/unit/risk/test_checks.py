from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.marketdata.symbols import load_bundled_rules
from trading.risk.checks import (
    BookState,
    Decision,
    Limits,
    OrderIntent,
    Side,
    evaluate,
    is_reduce_only,
)
from trading.risk.reasons import Reason
from trading.risk.state import TradingState

D = Decimal
RULES = load_bundled_rules()
ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
# Marks used by every book: BTC at 30,000, ETH at 2,000, SOL at 20 USDT.
MARKS = {"BTCUSDT": D("30000"), "ETHUSDT": D("2000"), "SOLUSDT": D("20")}
EXPOSURE_REASONS = {
    Reason.MAX_POSITION_NOTIONAL,
    Reason.MAX_TOTAL_EXPOSURE,
    Reason.MAX_OPEN_POSITIONS,
}


def limits(**overrides) -> Limits:
    values: dict[str, Any] = {
        "max_position_notional": D("1000"),
        "max_total_exposure": D("2500"),
        "max_leverage": 3,
        "max_open_positions": 2,
        "daily_loss_limit": D("500"),
        "max_drawdown": D("0.2"),
        "max_orders_per_minute": 10,
        "allowed_symbols": {"BTCUSDT", "ETHUSDT", "SOLUSDT"},
    }
    return Limits(**(values | overrides))


def intent(**overrides) -> OrderIntent:
    """By default a market BUY of 0.01 BTC at 30,000: 300 USDT, confidence 0.8, no leverage."""
    values: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "side": Side.BUY,
        "quantity": D("0.01"),
        "price": D("30000"),
        "confidence": D("0.8"),
    }
    return OrderIntent(**(values | overrides))


# Balances that pay for any order here, for the tests of the other checks.
AMPLE = {"USDT": D("1000000000"), "BTC": D("1000"), "ETH": D("100000"), "SOL": D("1000000")}


def book(state=ACTIVE, **overrides) -> BookState:
    values = {"trading_state": state, "positions": {}, "marks": MARKS, "balances": AMPLE}
    return BookState(**(values | overrides))


def decide(order=None, risk=None, books=None, rules=None) -> Decision:
    return evaluate(
        order or intent(),
        risk or limits(),
        books or book(),
        RULES if rules is None else rules,
    )


def assert_denied(decision: Decision, reason: Reason, detail: str | None = None) -> None:
    assert not decision.approved
    assert decision.reason == reason, decision
    if detail is not None:
        assert decision.detail == detail


# -- the happy path -----------------------------------------------------------------------------


def test_it_approves_an_order_within_every_limit():
    assert decide() == Decision(approved=True, reason=None, detail="")


# -- trading state ------------------------------------------------------------------------------


def test_it_denies_every_order_when_trading_is_halted():
    assert_denied(decide(books=book(HALTED)), Reason.TRADING_HALTED, "trading state is HALTED")


def test_it_denies_even_a_closing_order_when_trading_is_halted():
    halted = book(HALTED, positions={"BTCUSDT": D("0.01")})
    assert_denied(decide(intent(side=Side.SELL), books=halted), Reason.TRADING_HALTED)


def test_it_denies_opening_a_position_when_reducing():
    assert_denied(
        decide(books=book(REDUCING)),
        Reason.REDUCE_ONLY,
        "trading state is REDUCING and BUY 0.01 would take the BTCUSDT position from 0 to 0.01",
    )


def test_it_denies_growing_a_position_when_reducing():
    reducing = book(REDUCING, positions={"BTCUSDT": D("0.02")})
    assert_denied(decide(intent(side=Side.BUY), books=reducing), Reason.REDUCE_ONLY)


def test_it_denies_growing_a_short_position_when_reducing():
    reducing = book(REDUCING, positions={"BTCUSDT": D("-0.02")})
    assert_denied(decide(intent(side=Side.SELL), books=reducing), Reason.REDUCE_ONLY)


def test_it_denies_flipping_a_long_into_a_short_when_reducing():
    reducing = book(REDUCING, positions={"BTCUSDT": D("0.01")})
    order = intent(side=Side.SELL, quantity=D("0.02"))
    assert_denied(decide(order, books=reducing), Reason.REDUCE_ONLY)


def test_it_approves_shrinking_a_long_position_when_reducing():
    reducing = book(REDUCING, positions={"BTCUSDT": D("0.02")})
    assert decide(intent(side=Side.SELL), books=reducing).approved


def test_it_approves_closing_a_position_exactly_when_reducing():
    reducing = book(REDUCING, positions={"BTCUSDT": D("0.01")})
    assert decide(intent(side=Side.SELL), books=reducing).approved


def test_it_approves_buying_back_part_of_a_short_when_reducing():
    reducing = book(REDUCING, positions={"BTCUSDT": D("-0.02")})
    assert decide(intent(side=Side.BUY), books=reducing).approved


def test_a_reduce_only_order_still_has_to_meet_the_exchange_rules():
    reducing = book(REDUCING, positions={"BTCUSDT": D("0.0002")})
    dust = intent(side=Side.SELL, quantity=D("0.0002"))
    assert_denied(decide(dust, books=reducing), Reason.MIN_NOTIONAL)


# -- daily loss ---------------------------------------------------------------------------------


def test_it_denies_orders_once_the_daily_loss_reaches_the_limit():
    losing = book(daily_pnl=D("-500"))
    assert_denied(
        decide(books=losing), Reason.DAILY_LOSS_LIMIT, "daily loss 500.00 >= limit 500.00"
    )


def test_it_approves_orders_while_the_daily_loss_is_under_the_limit():
    assert decide(books=book(daily_pnl=D("-499.99"))).approved


def test_the_daily_loss_limit_also_stops_reducing_orders_as_the_halt_will():
    losing = book(positions={"BTCUSDT": D("0.02")}, daily_pnl=D("-750"))
    assert_denied(decide(intent(side=Side.SELL), books=losing), Reason.DAILY_LOSS_LIMIT)


# -- symbol -------------------------------------------------------------------------------------


def test_it_denies_a_symbol_that_is_not_allowed():
    btc_only = limits(allowed_symbols={"BTCUSDT"})
    order = intent(symbol="ETHUSDT", quantity=D("0.1"), price=D("2000"))
    assert_denied(
        decide(order, btc_only),
        Reason.SYMBOL_NOT_ALLOWED,
        "ETHUSDT is not allowed (allowed: BTCUSDT)",
    )


def test_an_empty_allow_list_allows_nothing():
    assert_denied(decide(risk=limits(allowed_symbols=frozenset())), Reason.SYMBOL_NOT_ALLOWED)


def test_it_denies_a_symbol_the_exchange_is_not_trading():
    rules = RULES | {"BTCUSDT": replace(RULES["BTCUSDT"], status="BREAK")}
    assert_denied(decide(rules=rules), Reason.SYMBOL_NOT_TRADING, "BTCUSDT status is BREAK")


def test_it_denies_a_symbol_without_exchange_rules():
    order = intent(symbol="DOGEUSDT", quantity=D("100"), price=D("0.1"))
    allowed = limits(allowed_symbols={"DOGEUSDT"})
    assert_denied(
        decide(order, allowed), Reason.SYMBOL_NOT_TRADING, "no exchange rules for DOGEUSDT"
    )


# -- confidence and leverage --------------------------------------------------------------------


def test_it_denies_orders_below_min_confidence():
    assert_denied(
        decide(intent(confidence=D("0.69"))),
        Reason.LOW_CONFIDENCE,
        "confidence 0.69 < minimum 0.7",
    )


def test_it_approves_orders_exactly_at_min_confidence():
    assert decide(intent(confidence=D("0.7"))).approved


def test_the_default_min_confidence_is_0_7():
    assert limits().min_confidence == D("0.7")


def test_it_honours_a_min_confidence_set_by_the_operator():
    assert_denied(decide(risk=limits(min_confidence=D("0.9"))), Reason.LOW_CONFIDENCE)


def test_it_denies_leverage_above_the_maximum():
    assert_denied(decide(intent(leverage=4)), Reason.MAX_LEVERAGE, "leverage 4 outside 1..3")


def test_a_spot_account_denies_any_leverage_but_one_within_the_maximum():
    assert_denied(
        decide(intent(leverage=3)),
        Reason.LEVERAGE_NOT_SUPPORTED,
        "leverage 3 on a spot account, which trades at 1",
    )
    assert decide(intent(leverage=1)).approved


def test_a_leverage_above_the_maximum_is_max_leverage_even_on_spot():
    assert_denied(decide(intent(leverage=5)), Reason.MAX_LEVERAGE)


# -- spot balances ------------------------------------------------------------------------------


def test_a_spot_sell_of_what_is_not_held_is_denied_insufficient_balance():
    empty = book(balances={"USDT": D("100000")})
    assert_denied(
        decide(intent(side="SELL", quantity=D("0.03")), books=empty),
        Reason.INSUFFICIENT_BALANCE,
        "SELL 0.03 BTC > free 0 BTC",
    )


def test_a_spot_sell_larger_than_the_free_base_is_denied_and_the_whole_of_it_passes():
    held = book(balances={"USDT": D("0"), "BTC": D("0.02")}, positions={"BTCUSDT": D("0.02")})
    assert_denied(decide(intent(side="SELL", quantity=D("0.03")), books=held),
                  Reason.INSUFFICIENT_BALANCE)  # fmt: skip
    assert decide(intent(side="SELL", quantity=D("0.02")), books=held).approved


def test_a_spot_buy_whose_cost_with_fee_exceeds_free_cash_is_denied():
    # 0.01 BTC at 30 000 is 300 USDT, 0.3 more in fees at 0.1%.
    short = book(balances={"USDT": D("300.29")}, fee_rate=D("0.001"))
    assert_denied(decide(intent(), books=short), Reason.INSUFFICIENT_BALANCE,
                  "BUY costs 300.3 USDT with fees > free 300.29 USDT")  # fmt: skip
    assert decide(intent(), books=book(balances={"USDT": D("300.3")}, fee_rate=D("0.001"))).approved


@pytest.mark.parametrize("leverage", [0, -1])
def test_it_denies_leverage_below_one(leverage):
    assert_denied(decide(intent(leverage=leverage)), Reason.MAX_LEVERAGE)


# -- exchange rules -----------------------------------------------------------------------------


def test_it_denies_a_quantity_that_is_not_a_multiple_of_the_step():
    assert_denied(
        decide(intent(quantity=D("0.010005"))),
        Reason.LOT_SIZE,
        "quantity 0.010005 is not a multiple of step 0.00001",
    )


def test_it_denies_a_quantity_below_the_minimum_quantity():
    assert_denied(
        decide(intent(quantity=D("0.009"), symbol="SOLUSDT", price=D("2000"))),
        Reason.LOT_SIZE,
        "quantity 0.009 < minimum 0.01",
    )


def test_a_value_below_the_minimum_notional_is_min_notional_before_any_lot_rule():
    # 0.009 SOL at 20 breaks both; the value is what the trader can act on.
    assert_denied(
        decide(intent(quantity=D("0.009"), symbol="SOLUSDT", price=D("20"))),
        Reason.MIN_NOTIONAL,
        "notional 0.18 < exchange minimum 5.00",
    )


def test_it_denies_a_quantity_above_the_maximum_quantity():
    order = intent(quantity=D("9000.01"), price=D("1"), market=False)
    assert_denied(decide(order), Reason.LOT_SIZE, "quantity 9000.01 > maximum 9000")


def test_it_approves_a_quantity_exactly_at_the_minimum_quantity():
    # 0.01 SOL is worth only 0.20 at the usual mark, so price it to meet the 5 USDT minimum too.
    order = intent(symbol="SOLUSDT", quantity=D("0.01"), price=D("500"))
    assert decide(order).approved


def test_it_denies_a_market_order_above_the_market_maximum_quantity():
    big = limits(max_position_notional=D("1e9"), max_total_exposure=D("1e9"))
    assert_denied(
        decide(intent(quantity=D("170")), big),
        Reason.MARKET_LOT_SIZE,
        "quantity 170 > maximum 169.00949758",
    )


def test_the_market_maximum_quantity_does_not_apply_to_limit_orders():
    big = limits(max_position_notional=D("1e9"), max_total_exposure=D("1e9"))
    assert decide(intent(quantity=D("170"), market=False), big).approved


def test_it_denies_a_market_order_off_a_market_step():
    rules = RULES | {"BTCUSDT": replace(RULES["BTCUSDT"], market_step_size=D("0.001"))}
    assert_denied(decide(intent(quantity=D("0.01001")), rules=rules), Reason.MARKET_LOT_SIZE)


def test_it_denies_an_order_below_min_notional():
    order = intent(quantity=D("0.0003"))  # 9 USDT
    assert_denied(decide(order), Reason.MIN_NOTIONAL, "notional 9.00 < exchange minimum 10.00")


def test_it_approves_an_order_exactly_at_min_notional():
    assert decide(intent(quantity=D("0.0005"), price=D("20000"))).approved


def test_a_market_order_skips_min_notional_when_the_exchange_does_not_apply_it():
    rules = RULES | {"BTCUSDT": replace(RULES["BTCUSDT"], apply_min_to_market=False)}
    small = intent(quantity=D("0.0003"))
    assert decide(small, rules=rules).approved
    assert_denied(decide(replace(small, market=False), rules=rules), Reason.MIN_NOTIONAL)


def test_it_denies_a_limit_order_above_max_notional():
    big = limits(max_position_notional=D("1e9"), max_total_exposure=D("1e9"))
    order = intent(quantity=D("300.00001"), market=False)  # 9,000,000.30 USDT
    assert_denied(
        decide(order, big), Reason.MAX_NOTIONAL, "notional 9000000.30 > exchange maximum 9000000.00"
    )


def test_it_approves_a_limit_order_exactly_at_max_notional():
    big = limits(max_position_notional=D("1e9"), max_total_exposure=D("1e9"))
    assert decide(intent(quantity=D("300"), market=False), big).approved


def test_max_notional_applies_to_market_orders_only_when_the_exchange_says_so():
    big = limits(max_position_notional=D("1e9"), max_total_exposure=D("1e9"))
    roomy = replace(RULES["BTCUSDT"], market_max_qty=D(0))
    order = intent(quantity=D("300.00001"))
    assert decide(order, big, rules={"BTCUSDT": roomy}).approved
    strict = replace(roomy, apply_max_to_market=True)
    assert_denied(decide(order, big, rules={"BTCUSDT": strict}), Reason.MAX_NOTIONAL)


# -- position notional --------------------------------------------------------------------------


def test_it_denies_a_position_notional_above_the_limit():
    holding = book(positions={"BTCUSDT": D("0.04")})
    assert_denied(
        decide(intent(quantity=D("0.01")), books=holding),
        Reason.MAX_POSITION_NOTIONAL,
        "BTCUSDT position notional 1500.00 > limit 1000.00",
    )


def test_it_approves_a_position_notional_exactly_at_the_limit():
    holding = book(positions={"BTCUSDT": D("0.02")})
    assert decide(intent(quantity=D("0.02"), price=D("25000")), books=holding).approved


def test_the_position_notional_is_valued_at_the_order_price_not_the_old_mark():
    holding = book(positions={"BTCUSDT": D("0.03")})  # 900 at the 30,000 mark
    assert_denied(
        decide(intent(quantity=D("0.002"), price=D("31500")), books=holding),
        Reason.MAX_POSITION_NOTIONAL,
        "BTCUSDT position notional 1008.00 > limit 1000.00",
    )


def test_it_counts_a_new_short_position_against_the_position_limit():
    assert_denied(decide(intent(side=Side.SELL, quantity=D("0.04"))), Reason.MAX_POSITION_NOTIONAL)


def test_it_does_not_deny_shrinking_a_position_that_is_over_the_limit():
    over = book(positions={"BTCUSDT": D("0.05")})  # 1,500 > 1,000
    assert decide(intent(side=Side.SELL, quantity=D("0.01")), books=over).approved


def test_flipping_a_position_is_checked_against_the_limit_like_a_new_one():
    long = book(positions={"BTCUSDT": D("0.01")})
    flip = intent(side=Side.SELL, quantity=D("0.05"))  # ends short 0.04 = 1,200
    assert_denied(decide(flip, books=long), Reason.MAX_POSITION_NOTIONAL)


# -- total exposure -----------------------------------------------------------------------------


def test_it_denies_a_total_exposure_above_the_limit():
    holding = book(positions={"ETHUSDT": D("1"), "SOLUSDT": D("-10")})  # 2,000 + 200
    assert_denied(
        decide(intent(quantity=D("0.011")), books=holding),  # + 330
        Reason.MAX_TOTAL_EXPOSURE,
        "total exposure 2530.00 > limit 2500.00",
    )


def test_it_approves_a_total_exposure_exactly_at_the_limit():
    holding = book(positions={"ETHUSDT": D("1"), "SOLUSDT": D("-10")})
    three = limits(max_open_positions=3)
    assert decide(intent(quantity=D("0.01")), three, holding).approved  # 2,500


def test_the_total_exposure_counts_the_orders_symbol_once_at_its_resulting_size():
    holding = book(positions={"BTCUSDT": D("0.02"), "ETHUSDT": D("0.9")})  # 600 + 1,800
    assert decide(intent(quantity=D("0.003")), books=holding).approved  # 690 + 1,800


def test_it_does_not_deny_shrinking_a_position_when_total_exposure_is_over_the_limit():
    over = book(positions={"ETHUSDT": D("2"), "BTCUSDT": D("0.03")})  # 4,000 + 900
    assert decide(intent(side=Side.SELL, quantity=D("0.01")), books=over).approved


# -- open positions -----------------------------------------------------------------------------


def test_it_denies_opening_a_position_beyond_max_open_positions():
    two_open = book(positions={"ETHUSDT": D("0.1"), "SOLUSDT": D("1")})
    assert_denied(
        decide(books=two_open),
        Reason.MAX_OPEN_POSITIONS,
        "opening BTCUSDT makes 3 open positions > limit 2",
    )


def test_it_approves_opening_the_last_position_allowed():
    one_open = book(positions={"ETHUSDT": D("0.1"), "SOLUSDT": D("0")})
    assert decide(books=one_open).approved


def test_it_approves_adding_to_an_open_position_at_max_open_positions():
    two_open = book(positions={"ETHUSDT": D("0.1"), "BTCUSDT": D("0.01")})
    assert decide(books=two_open).approved


def test_it_does_not_deny_reducing_when_over_max_open_positions():
    three_open = book(
        positions={"ETHUSDT": D("0.1"), "SOLUSDT": D("1"), "BTCUSDT": D("0.02")},
    )
    assert decide(intent(side=Side.SELL), books=three_open).approved


# -- order rate ---------------------------------------------------------------------------------


def test_it_denies_an_order_beyond_the_order_rate():
    busy = book(orders_last_minute=10)
    assert_denied(decide(books=busy), Reason.ORDER_RATE, "11 orders in a minute > limit 10")


def test_it_approves_the_last_order_the_rate_allows():
    assert decide(books=book(orders_last_minute=9)).approved


def test_the_order_rate_also_limits_reducing_orders():
    busy = book(positions={"BTCUSDT": D("0.02")}, orders_last_minute=10)
    assert_denied(decide(intent(side=Side.SELL), books=busy), Reason.ORDER_RATE)


# -- the order of the checks --------------------------------------------------------------------


def test_the_checks_run_in_the_documented_order():
    """Start with an order that breaks every rule, fix one at a time, and watch the reason move."""
    rules = RULES | {"SOLUSDT": replace(RULES["SOLUSDT"], status="BREAK")}
    order = intent(
        symbol="SOLUSDT",
        quantity=D("200.005"),  # off-step, and 4,000.10 at 20
        price=D("20"),
        confidence=D("0.5"),
        leverage=5,
    )
    risk = limits(allowed_symbols={"BTCUSDT"}, max_open_positions=0)
    state = book(HALTED, daily_pnl=D("-1000"), orders_last_minute=99)

    steps = [
        (Reason.TRADING_HALTED, lambda: {"state": replace(state, trading_state=ACTIVE)}),
        (Reason.DAILY_LOSS_LIMIT, lambda: {"state": replace(state, daily_pnl=D(0))}),
        (Reason.SYMBOL_NOT_ALLOWED, lambda: {"risk": replace(risk, allowed_symbols={"SOLUSDT"})}),
        (Reason.SYMBOL_NOT_TRADING, lambda: {"rules": RULES}),
        (Reason.LOW_CONFIDENCE, lambda: {"order": replace(order, confidence=D("0.9"))}),
        (Reason.MAX_LEVERAGE, lambda: {"order": replace(order, leverage=1)}),
        (Reason.LOT_SIZE, lambda: {"order": replace(order, quantity=D("200"))}),
        (Reason.MAX_POSITION_NOTIONAL, lambda: {"order": replace(order, quantity=D("40"))}),
        (Reason.MAX_OPEN_POSITIONS, lambda: {"risk": replace(risk, max_open_positions=1)}),
        (Reason.ORDER_RATE, lambda: {"state": replace(state, orders_last_minute=0)}),
    ]
    for expected, fix in steps:
        assert_denied(evaluate(order, risk, state, rules), expected)
        changed = fix()
        order = changed.get("order", order)
        risk = changed.get("risk", risk)
        state = changed.get("state", state)
        rules = changed.get("rules", rules)
    assert evaluate(order, risk, state, rules).approved


def test_exchange_rules_are_checked_before_exposure():
    two_open = book(positions={"ETHUSDT": D("0.1"), "SOLUSDT": D("1")})
    assert_denied(decide(intent(quantity=D("0.0003")), books=two_open), Reason.MIN_NOTIONAL)


def test_position_notional_is_checked_before_total_exposure():
    holding = book(positions={"ETHUSDT": D("1.2")})
    assert_denied(decide(intent(quantity=D("0.04")), books=holding), Reason.MAX_POSITION_NOTIONAL)


# -- input contracts ----------------------------------------------------------------------------


def test_an_intent_refuses_a_float_quantity():
    with pytest.raises(TypeError, match="quantity"):
        intent(quantity=0.01)


@pytest.mark.parametrize("quantity", [D("0"), D("-0.01")])
def test_an_intent_refuses_a_quantity_that_is_not_positive(quantity):
    with pytest.raises(ValueError, match="quantity"):
        intent(quantity=quantity)


def test_an_intent_refuses_a_confidence_above_one():
    with pytest.raises(ValueError, match="confidence"):
        intent(confidence=D("1.5"))


def test_an_intent_accepts_the_side_as_a_string():
    assert intent(side="SELL").side is Side.SELL


def test_a_book_refuses_an_open_position_without_a_mark():
    with pytest.raises(ValueError, match="no mark for open positions: ETHUSDT"):
        book(positions={"ETHUSDT": D("1")}, marks={"BTCUSDT": D("30000")})


def test_a_book_does_not_see_later_changes_to_the_callers_positions():
    positions = {"BTCUSDT": D("0.01")}
    state = book(positions=positions)
    positions["BTCUSDT"] = D("5")
    assert state.position("BTCUSDT") == D("0.01")


def test_a_zero_position_cap_denies_opening_but_not_closing():
    no_new_risk = limits(max_position_notional=D("0"))
    assert_denied(decide(risk=no_new_risk), Reason.MAX_POSITION_NOTIONAL)
    holding = book(positions={"BTCUSDT": D("0.01")})
    assert decide(intent(side=Side.SELL), no_new_risk, holding).approved


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_total_exposure": D("-1")},
        {"daily_loss_limit": D("0")},
        {"max_drawdown": D("0")},
        {"max_drawdown": D("1.5")},
        {"min_confidence": D("1.1")},
        {"max_open_positions": -1},
    ],
)
def test_limits_refuse_values_that_make_no_sense(overrides):
    with pytest.raises(ValueError, match=next(iter(overrides))):
        limits(**overrides)


def test_limits_refuse_a_max_leverage_below_one():
    with pytest.raises(ValueError, match="max_leverage"):
        limits(max_leverage=0)


def test_limits_refuse_a_single_string_as_allowed_symbols():
    with pytest.raises(TypeError, match="allowed_symbols"):
        limits(allowed_symbols="BTCUSDT")


def test_every_reason_has_a_description():
    assert all(reason.description for reason in Reason)
    assert Reason.choices()[0] == ("TRADING_HALTED", Reason.TRADING_HALTED.description)


# -- properties ---------------------------------------------------------------------------------

btc_quantities = st.integers(min_value=1, max_value=10_000).map(lambda n: D(n) * D("0.00001"))
signed_positions = st.integers(min_value=-10_000, max_value=10_000).map(
    lambda n: D(n) * D("0.00001")
)
prices = st.integers(min_value=1_000_000, max_value=10_000_000).map(lambda n: D(n) / 100)
tight_amounts = st.integers(min_value=1, max_value=5_000).map(D)


@given(
    position=signed_positions,
    side=st.sampled_from(list(Side)),
    quantity=btc_quantities,
    price=prices,
    state=st.sampled_from([ACTIVE, REDUCING]),
)
def test_an_approved_order_in_reducing_never_grows_or_flips_the_position(
    position, side, quantity, price, state
):
    positions = {"BTCUSDT": position}
    order = intent(side=side, quantity=quantity, price=price)
    decision = decide(order, books=book(state, positions=positions))
    after = position + order.signed_quantity
    if state == REDUCING and decision.approved:
        assert abs(after) < abs(position)
        assert after == 0 or (after > 0) == (position > 0)


@given(
    position=signed_positions.filter(bool),
    fraction=st.integers(min_value=1, max_value=100),
    price=prices,
    position_limit=tight_amounts,
    exposure_limit=tight_amounts,
    open_limit=st.integers(min_value=0, max_value=2),
    eth=st.integers(min_value=0, max_value=100).map(lambda n: D(n) / 10),
)
def test_a_reduce_only_order_is_never_denied_for_exposure(
    position, fraction, price, position_limit, exposure_limit, open_limit, eth
):
    # A quantity between one step and the whole position, on the step grid.
    quantity = max(D("0.00001"), (abs(position) * fraction / 100).quantize(D("0.00001")))
    quantity = min(quantity, abs(position))
    side = Side.SELL if position > 0 else Side.BUY
    order = intent(side=side, quantity=quantity, price=price)
    state = book(positions={"BTCUSDT": position, "ETHUSDT": eth})
    assert is_reduce_only(order, state)
    risk = limits(
        max_position_notional=position_limit,
        max_total_exposure=exposure_limit,
        max_open_positions=open_limit,
    )
    assert decide(order, risk, state).reason not in EXPOSURE_REASONS


@given(
    position=signed_positions,
    side=st.sampled_from(list(Side)),
    quantity=btc_quantities,
    price=prices,
    eth=st.integers(min_value=-20, max_value=20).map(lambda n: D(n) / 10),
)
def test_an_approved_order_that_adds_risk_leaves_the_book_within_the_limits(
    position, side, quantity, price, eth
):
    state = book(positions={"BTCUSDT": position, "ETHUSDT": eth})
    order = intent(side=side, quantity=quantity, price=price)
    risk = limits()
    if not decide(order, risk, state).approved or is_reduce_only(order, state):
        return
    after = position + order.signed_quantity
    assert abs(after) * price <= risk.max_position_notional
    assert abs(after) * price + abs(eth) * MARKS["ETHUSDT"] <= risk.max_total_exposure
