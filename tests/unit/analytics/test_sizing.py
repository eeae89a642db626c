"""The sizing boost: bounded, earned by risk-adjusted performance, neutral without history."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.analytics.sizing import SizingReason, assess_sizing, sizing_multiplier

pnl = st.decimals(min_value="-1000", max_value="1000", places=2, allow_nan=False)
records = st.lists(pnl, min_size=10, max_size=80)


def record(wins: int, losses: int, win: str = "1", loss: str = "-1") -> list[D]:
    return [D(win)] * wins + [D(loss)] * losses


# -- too little history ----------------------------------------------------------------------------


def test_it_is_exactly_one_with_fewer_trades_than_the_minimum_however_good():
    decision = assess_sizing(record(9, 0, win="500"))

    assert decision.multiplier == 1
    assert decision.reason is SizingReason.INSUFFICIENT_HISTORY
    assert decision.sharpe is None


def test_it_is_exactly_one_with_little_history_even_when_the_floor_is_lower():
    assert sizing_multiplier(record(1, 8), floor=D("0.5")) == 1


# -- earning a boost -------------------------------------------------------------------------------


def test_a_proven_edge_earns_a_boost_in_proportion_to_its_lower_bound():
    # 65 wins of +1 and 35 losses of -1: mean 0.3
    # sample variance (100 - 100 x 0.09) / 99 = 0.919192; stdev 0.958745
    # s = 0.3 / 0.958745 = 0.312909; standard error sqrt((1 + s^2 / 2) / 100) = 0.102419
    # s_low = 0.312909 - 1.645 x 0.102419 = 0.144431
    # multiplier = 1 + 0.5 x 0.144431 / 0.3 = 1.240718, rounded down -> 1.2407
    decision = assess_sizing(record(65, 35))

    assert decision.reason is SizingReason.BOOSTED
    assert decision.sharpe == pytest.approx(0.312909, abs=1e-6)
    assert decision.sharpe_lower_bound == pytest.approx(0.144431, abs=1e-6)
    assert decision.multiplier == D("1.2407")


def test_the_same_edge_over_more_trades_earns_more():
    # same s (about 0.313) over 200 trades: a tighter bound, 0.194552 -> 1 + 0.5 x 0.648507
    assert sizing_multiplier(record(130, 70)) == D("1.3242") > sizing_multiplier(record(65, 35))


def test_a_coin_flip_record_earns_nothing():
    # 50 wins, 50 losses of equal size: s = 0, s_low < 0
    decision = assess_sizing(record(50, 50))

    assert decision.multiplier == 1
    assert decision.reason is SizingReason.NOT_EARNED


def test_a_lucky_short_record_earns_nothing():
    # 7 of 10 won: s = 0.4 / 0.966 = 0.414, but s_low = 0.414 - 1.645 x 0.330 < 0
    assert sizing_multiplier(record(7, 3)) == 1


def test_a_losing_record_gets_the_floor():
    assert sizing_multiplier(record(20, 80), floor=D("0.5")) == D("0.5")
    assert sizing_multiplier(record(20, 80)) == 1


def test_an_outstanding_record_is_capped_at_the_maximum():
    assert sizing_multiplier(record(95, 5, win="3")) == D("1.5")
    assert sizing_multiplier(record(95, 5, win="3"), max_multiplier=D("2")) == 2
    assert sizing_multiplier(record(95, 5, win="3"), max_multiplier=1) == 1


def test_identical_winning_trades_earn_the_maximum_and_identical_losses_nothing():
    assert sizing_multiplier(record(12, 0, win="2.5")) == D("1.5")
    assert sizing_multiplier(record(0, 12, loss="-2.5")) == 1
    assert sizing_multiplier([D(0)] * 12) == 1


def test_floats_are_taken_like_decimals():
    assert sizing_multiplier([1.0] * 65 + [-1.0] * 35) == D("1.2407")


def test_it_refuses_settings_that_would_break_its_bounds():
    with pytest.raises(ValueError, match="max_multiplier"):
        sizing_multiplier(record(65, 35), max_multiplier=D("0.9"))
    with pytest.raises(ValueError, match="floor"):
        sizing_multiplier(record(65, 35), floor=D("1.1"))
    with pytest.raises(ValueError, match="min_trades"):
        sizing_multiplier(record(65, 35), min_trades=1)
    with pytest.raises(ValueError, match="full_boost_sharpe"):
        sizing_multiplier(record(65, 35), sharpe_threshold=0.5, full_boost_sharpe=0.5)
    with pytest.raises(ValueError, match="finite"):
        sizing_multiplier([D("NaN")] * 10)


# -- properties ------------------------------------------------------------------------------------


@given(trades=records, maximum=st.decimals(min_value="1", max_value="3", places=2))
def test_it_never_leaves_the_floor_to_maximum_range(trades, maximum):
    multiplier = sizing_multiplier(trades, max_multiplier=maximum, floor=D("0.8"))

    assert D("0.8") <= multiplier <= maximum


@given(trades=st.lists(pnl, max_size=9))
def test_it_is_exactly_one_below_the_minimum_history(trades):
    assert sizing_multiplier(trades) == 1


@given(trades=records)
def test_it_rises_above_one_only_when_the_lower_bound_clears_the_threshold(trades):
    decision = assess_sizing(trades, sharpe_threshold=0.1)

    if decision.multiplier > 1:
        assert decision.sharpe_lower_bound > 0.1
    else:
        assert decision.sharpe_lower_bound is None or decision.sharpe_lower_bound <= 0.1


@given(trades=records, bonus=st.decimals(min_value="0.01", max_value="100", places=2))
def test_doing_better_on_every_trade_never_lowers_it(trades, bonus):
    better = [trade + bonus for trade in trades]

    assert sizing_multiplier(better) >= sizing_multiplier(trades)


@given(trades=records, scale=st.sampled_from([D("0.25"), D("0.5"), D("2"), D("8")]))
def test_it_does_not_depend_on_the_size_of_the_book(trades, scale):
    # powers of two keep the float conversion exact, so any difference would be the formula's
    assert sizing_multiplier([trade * scale for trade in trades]) == sizing_multiplier(trades)
