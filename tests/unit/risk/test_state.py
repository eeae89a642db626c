from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.risk.reasons import Reason
from trading.risk.state import InvalidTransition, TradingState, automatic_state, transition

D = Decimal
ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def auto(current=ACTIVE, **overrides):
    """automatic_state with a 500 loss limit, 10,000 equity at its peak and a 20% max drawdown."""
    values = {
        "daily_pnl": D("0"),
        "daily_loss_limit": D("500"),
        "equity": D("10000"),
        "peak_equity": D("10000"),
        "max_drawdown": D("0.2"),
    }
    return automatic_state(current, **(values | overrides))


# -- transition ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "target"),
    [(ACTIVE, REDUCING), (ACTIVE, HALTED), (REDUCING, HALTED), (REDUCING, ACTIVE)],
)
def test_it_allows_tightening_and_lifting_reduce_only_without_a_resume(current, target):
    assert transition(current, target) == target


@pytest.mark.parametrize("target", [ACTIVE, REDUCING])
def test_it_refuses_to_leave_halted_without_an_explicit_resume(target):
    with pytest.raises(InvalidTransition, match="explicit resume") as raised:
        transition(HALTED, target)
    assert (raised.value.current, raised.value.target) == (HALTED, target)


@pytest.mark.parametrize("target", [ACTIVE, REDUCING])
def test_an_explicit_resume_leaves_halted(target):
    assert transition(HALTED, target, resume=True) == target


@pytest.mark.parametrize("state", list(TradingState))
def test_it_refuses_a_transition_to_the_same_state(state):
    with pytest.raises(InvalidTransition, match=f"already {state}"):
        transition(state, state, resume=True)


def test_it_accepts_state_names_as_stored_in_the_database():
    assert transition("ACTIVE", "HALTED") is HALTED


def test_it_refuses_an_unknown_state_name():
    with pytest.raises(ValueError):
        transition("ACTIVE", "PAUSED")


def test_an_invalid_transition_is_a_value_error():
    assert issubclass(InvalidTransition, ValueError)


# -- automatic_state: daily loss ----------------------------------------------------------------


def test_a_daily_loss_exactly_at_the_limit_halts():
    assert auto(daily_pnl=D("-500")) == (HALTED, Reason.DAILY_LOSS_LIMIT)


def test_a_daily_loss_just_under_the_limit_changes_nothing():
    assert auto(daily_pnl=D("-499.99")) == (ACTIVE, None)


def test_a_daily_loss_halts_a_reducing_book():
    assert auto(REDUCING, daily_pnl=D("-600")) == (HALTED, Reason.DAILY_LOSS_LIMIT)


def test_a_daily_profit_changes_nothing():
    assert auto(daily_pnl=D("10000")) == (ACTIVE, None)


# -- automatic_state: drawdown ------------------------------------------------------------------


def test_a_drawdown_exactly_at_the_maximum_reduces():
    assert auto(equity=D("8000"), peak_equity=D("10000")) == (REDUCING, Reason.MAX_DRAWDOWN)


def test_a_drawdown_just_under_the_maximum_changes_nothing():
    assert auto(equity=D("8000.01"), peak_equity=D("10000")) == (ACTIVE, None)


def test_a_daily_loss_breach_wins_over_a_drawdown_breach():
    state = auto(daily_pnl=D("-500"), equity=D("5000"), peak_equity=D("10000"))
    assert state == (HALTED, Reason.DAILY_LOSS_LIMIT)


def test_a_drawdown_leaves_a_reducing_book_reducing_without_a_new_reason():
    assert auto(REDUCING, equity=D("7000")) == (REDUCING, None)


def test_a_recovered_drawdown_does_not_lift_reducing():
    assert auto(REDUCING, equity=D("10000"), peak_equity=D("10000")) == (REDUCING, None)


def test_equity_above_the_recorded_peak_is_no_drawdown():
    assert auto(equity=D("12000"), peak_equity=D("10000")) == (ACTIVE, None)


def test_there_is_no_drawdown_to_measure_without_a_positive_peak():
    assert auto(equity=D("-100"), peak_equity=D("0")) == (ACTIVE, None)


# -- automatic_state: halted stays halted -------------------------------------------------------


def test_a_halted_book_stays_halted_when_every_number_is_healthy():
    assert auto(HALTED, daily_pnl=D("100"), equity=D("11000")) == (HALTED, None)


def test_a_halted_book_is_not_lowered_to_reducing_by_a_drawdown():
    assert auto(HALTED, equity=D("1000")) == (HALTED, None)


# -- automatic_state: arguments -----------------------------------------------------------------


@pytest.mark.parametrize("limit", [D("0"), D("-500")])
def test_it_refuses_a_daily_loss_limit_that_is_not_positive(limit):
    with pytest.raises(ValueError, match="daily_loss_limit"):
        auto(daily_loss_limit=limit)


@pytest.mark.parametrize("fraction", [D("0"), D("-0.1"), D("1.01")])
def test_it_refuses_a_drawdown_that_is_not_a_fraction(fraction):
    with pytest.raises(ValueError, match="max_drawdown"):
        auto(max_drawdown=fraction)


# -- properties ---------------------------------------------------------------------------------

money = st.decimals(min_value=D("-100000"), max_value=D("100000"), places=2)
positive_money = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
fractions = st.decimals(min_value=D("0.01"), max_value=D("1"), places=2)
severity = {ACTIVE: 0, REDUCING: 1, HALTED: 2}


@given(
    current=st.sampled_from(list(TradingState)),
    daily_pnl=money,
    daily_loss_limit=positive_money,
    equity=money,
    peak_equity=money,
    max_drawdown=fractions,
)
def test_automatic_changes_only_tighten_and_are_valid_transitions(
    current, daily_pnl, daily_loss_limit, equity, peak_equity, max_drawdown
):
    new, reason = automatic_state(
        current, daily_pnl, daily_loss_limit, equity, peak_equity, max_drawdown
    )
    assert severity[new] >= severity[current]
    if new == current:
        assert reason is None
    else:
        assert reason in (Reason.DAILY_LOSS_LIMIT, Reason.MAX_DRAWDOWN)
        assert transition(current, new) == new
    if daily_pnl <= -daily_loss_limit:
        assert new == HALTED
