"""Performance statistics: win rate, profit factor, Sharpe ratio, max drawdown, the summary."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from trading.analytics.performance import (
    max_drawdown,
    period_returns,
    profit_factor,
    sharpe_ratio,
    summarize,
    win_rate,
)

T0 = datetime(2025, 9, 1, tzinfo=UTC)


def curve(*equities: str | float) -> list[tuple[datetime, D | float]]:
    """An hourly equity curve from T0."""
    return [
        (T0 + timedelta(hours=i), D(e) if isinstance(e, str) else e) for i, e in enumerate(equities)
    ]


def at(hour: int) -> datetime:
    return T0 + timedelta(hours=hour)


# -- win rate --------------------------------------------------------------------------------------


def test_win_rate_is_the_share_of_trades_with_positive_pnl():
    # wins: 10 and 20; the break-even 0 is a trade but not a win -> 2 / 4 = 0.5
    assert win_rate([D("10"), D("-5"), D("0"), D("20")]) == 0.5


def test_win_rate_is_none_without_trades():
    assert win_rate([]) is None


# -- profit factor ---------------------------------------------------------------------------------


def test_profit_factor_is_gross_profit_over_gross_loss():
    # gross profit 10 + 20 = 30, gross loss 5 + 10 = 15 -> 30 / 15 = 2
    assert profit_factor([D("10"), D("-5"), D("20"), D("-10")]) == 2.0


def test_profit_factor_sums_ledger_amounts_exactly():
    # 0.1 + 0.1 + 0.1 = 0.3 exactly in Decimal (0.30000000000000004 in floats) against a loss of
    # 0.3 -> exactly 1; floats are taken at their shortest repr, so they agree.
    assert profit_factor([D("0.1"), D("0.1"), D("0.1"), D("-0.3")]) == 1.0
    assert profit_factor([0.1, 0.1, 0.1, -0.3]) == 1.0


def test_profit_factor_is_infinite_with_profits_and_no_losses():
    assert profit_factor([D("5"), D("0")]) == math.inf


def test_profit_factor_is_zero_with_losses_and_no_profits():
    assert profit_factor([D("-1"), D("-2")]) == 0.0


def test_profit_factor_is_none_without_trades_or_when_every_trade_broke_even():
    assert profit_factor([]) is None
    assert profit_factor([D("0"), D("0")]) is None


def test_a_non_finite_pnl_is_refused():
    with pytest.raises(ValueError, match="finite"):
        win_rate([D("NaN")])
    with pytest.raises(ValueError, match="finite"):
        profit_factor([math.inf])


# -- Sharpe ratio ----------------------------------------------------------------------------------


def test_sharpe_ratio_annualises_the_mean_over_the_deviation_of_period_returns():
    # 100 -> 110 -> 99 -> 108.9: returns +0.1, -0.1, +0.1
    # mean = 0.1 / 3 = 1/30; deviations 2/30, -4/30, 2/30
    # sample variance = (4 + 16 + 4) / 900 / (3 - 1) = 1/75; stdev = 1 / (5 * sqrt(3))
    # mean / stdev = 5 * sqrt(3) / 30 = sqrt(3) / 6; x sqrt(4 periods a year) = 1 / sqrt(3)
    equity = curve("100", "110", "99", "108.9")

    assert period_returns(equity) == pytest.approx([0.1, -0.1, 0.1])
    assert sharpe_ratio(equity, periods_per_year=4) == pytest.approx(1 / math.sqrt(3))


def test_sharpe_ratio_is_negative_for_a_losing_curve():
    # 100 -> 90 -> 85.5 -> 77: returns -0.1, -0.05, -0.0994...; mean < 0
    assert sharpe_ratio(curve("100", "90", "85.5", "77"), periods_per_year=365) < 0


def test_sharpe_ratio_is_none_with_fewer_than_two_returns():
    assert sharpe_ratio(curve(), periods_per_year=365) is None
    assert sharpe_ratio(curve("100"), periods_per_year=365) is None
    assert sharpe_ratio(curve("100", "110"), periods_per_year=365) is None


def test_sharpe_ratio_is_none_when_returns_do_not_vary():
    # 100 -> 101 -> 102.01: +1 % twice, a deviation of zero
    assert sharpe_ratio(curve("100", "101", "102.01"), periods_per_year=365) is None
    assert sharpe_ratio(curve(100.0, 101.0, 102.01, 103.0301), periods_per_year=365) is None


def test_sharpe_ratio_is_none_after_equity_reached_zero():
    assert sharpe_ratio(curve("100", "0", "10", "12"), periods_per_year=365) is None


def test_sharpe_ratio_refuses_a_non_positive_period_count():
    with pytest.raises(ValueError, match="periods_per_year"):
        sharpe_ratio(curve("100", "110", "99"), periods_per_year=0)


# -- max drawdown ----------------------------------------------------------------------------------


def test_max_drawdown_is_the_largest_fall_from_a_running_peak():
    # 100, 120, 90, 130, 104, 110
    # 120 -> 90: 30 / 120 = 0.25; 130 -> 104: 26 / 130 = 0.2 -> 0.25 from hour 1 to hour 2
    fraction, peak_ts, trough_ts = max_drawdown(curve("100", "120", "90", "130", "104", "110"))

    assert fraction == D("0.25")
    assert (peak_ts, trough_ts) == (at(1), at(2))


def test_max_drawdown_measures_from_the_last_time_at_the_peak():
    # 100, 90, 100, 70: back at 100 in hour 2 means the first fall recovered;
    # the worst fall is 100 -> 70 = 0.3, from hour 2, not hour 0
    assert max_drawdown(curve("100", "90", "100", "70")) == (D("0.3"), at(2), at(3))


def test_max_drawdown_reports_the_earliest_of_equal_falls():
    # 100 -> 80 = 0.2, then 100 -> 80 = 0.2 again: the first one is reported
    assert max_drawdown(curve("100", "80", "100", "80")) == (D("0.2"), at(0), at(1))


def test_max_drawdown_is_zero_for_a_curve_that_never_falls():
    assert max_drawdown(curve("100", "100", "101", "150")) == (D(0), None, None)
    assert max_drawdown(curve()) == (D(0), None, None)


def test_max_drawdown_is_the_whole_book_when_equity_reaches_zero():
    assert max_drawdown(curve("100", "50", "0")) == (D(1), at(0), at(2))


def test_an_equity_curve_out_of_time_order_is_refused():
    shuffled = [(at(1), D("100")), (at(0), D("90"))]
    with pytest.raises(ValueError, match="strictly increase"):
        max_drawdown(shuffled)


def test_an_equity_curve_with_naive_timestamps_is_refused():
    with pytest.raises(ValueError, match="aware"):
        max_drawdown([(datetime(2025, 9, 1), D("100"))])


# -- the summary -----------------------------------------------------------------------------------


def test_summary_gathers_every_statistic_over_the_same_inputs():
    trades = [D("10"), D("-5"), D("20"), D("-10")]
    equity = curve("100", "110", "99", "108.9")

    summary = summarize(trades, equity, periods_per_year=4)

    assert summary.trade_count == 4
    assert (summary.win_count, summary.loss_count) == (2, 2)
    assert summary.win_rate == 0.5
    assert (summary.gross_profit, summary.gross_loss, summary.net_pnl) == (D(30), D(15), D(15))
    assert summary.profit_factor == 2.0
    assert summary.sharpe_ratio == pytest.approx(1 / math.sqrt(3))
    # 110 -> 99 = 11 / 110 = 0.1, from hour 1 to hour 2
    assert summary.max_drawdown == D("0.1")
    assert (summary.max_drawdown_peak_at, summary.max_drawdown_trough_at) == (at(1), at(2))


def test_summary_json_is_strict_json_with_exact_money():
    summary = summarize([D("0.1"), D("0.2")], curve("100", "100.3"), periods_per_year=365)

    encoded = json.loads(json.dumps(summary.as_json(), allow_nan=False))

    assert encoded["net_pnl"] == "0.3"
    assert encoded["profit_factor"] == "Infinity"  # no losses; strict JSON has no infinity
    assert encoded["sharpe_ratio"] is None  # one return
    assert encoded["max_drawdown"] == "0"
    assert encoded["max_drawdown_peak_at"] is None


def test_summary_of_nothing_says_not_defined_rather_than_zero():
    summary = summarize([], [], periods_per_year=365)

    assert summary.trade_count == 0
    assert summary.win_rate is None
    assert summary.profit_factor is None
    assert summary.sharpe_ratio is None
    assert summary.as_json()["win_rate"] is None
