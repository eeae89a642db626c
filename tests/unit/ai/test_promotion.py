"""The promotion test's arithmetic on values: the Newey-West interval, the rule, the decision."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from scipy.stats import t as student_t

from trading.ai.promotion import (
    Pair,
    TrialRule,
    newey_west_interval,
    promotion_test,
    trial_progress,
)

T0 = datetime(2025, 9, 10, tzinfo=UTC)


def pair(minute: int, symbol: str, champion: float, challenger: float, hits=(True, True)) -> Pair:
    return Pair(symbol, T0 + timedelta(minutes=5 * minute), champion, challenger, *hits)


def test_without_lags_the_interval_is_the_textbook_t_interval():
    series = [1.0, 2.0, 3.0, 4.0]
    interval = newey_west_interval(series, lags=0)
    # Newey-West's variance divides by n: sum of squares 5 / 4 = 1.25, over n again.
    se = math.sqrt(1.25 / 4)
    q = student_t.ppf(0.975, 3)
    assert interval.mean == 2.5
    assert interval.standard_error == pytest.approx(se)
    assert (interval.low, interval.high) == pytest.approx((2.5 - q * se, 2.5 + q * se))


def test_positively_autocorrelated_differences_widen_the_interval():
    series = [1.0, 1.0, 1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0]
    plain = newey_west_interval(series, lags=0)
    # gamma_0 = 1; at lag 1, 8 of 11 neighbours agree: (8 - 3) / 12; at lag 2, 4 of 10: -2 / 12.
    hac = newey_west_interval(series, lags=2)
    variance = 1 + 2 * (2 / 3) * (5 / 12) + 2 * (1 / 3) * (-2 / 12)
    assert hac.standard_error == pytest.approx(math.sqrt(variance / 12))
    assert hac.standard_error > plain.standard_error


def test_an_interval_needs_two_points():
    with pytest.raises(ValueError, match="at least two"):
        newey_west_interval([0.1], lags=0)


def test_a_challenger_better_at_every_bar_is_promoted():
    pairs = [pair(m, s, 0.25, 0.20 - 0.001 * (m % 3)) for m in range(30) for s in ("A", "B")]
    result = promotion_test(pairs, horizon_bars=12)
    assert result.bar_times == 30 and result.pairs == 60
    assert result.brier_difference.high < 0
    assert result.brier_difference.lags == 11
    assert result.champion_brier == pytest.approx(0.25)
    assert result.promote


def test_a_better_brier_with_a_worse_hit_rate_is_kept_out():
    pairs = [pair(m, "A", 0.25, 0.20, hits=(True, m % 2 == 0)) for m in range(30)]
    result = promotion_test(pairs, horizon_bars=12)
    assert result.brier_better
    assert result.challenger_hit_rate == 0.5 and result.champion_hit_rate == 1.0
    assert not result.hit_rate_not_worse and not result.promote


def test_noise_around_zero_is_kept_out():
    diffs = [0.01, -0.012, 0.008, -0.011, 0.02, -0.019, 0.0, 0.005, -0.004, -0.003]
    pairs = [pair(m, "A", 0.25, 0.25 + d) for m, d in enumerate(diffs)]
    result = promotion_test(pairs, horizon_bars=3)
    assert result.brier_difference.low < 0 < result.brier_difference.high
    assert not result.promote
    assert result.as_json()["test"].startswith("promote when the 95% confidence interval")


def test_the_differences_of_one_bar_time_count_once():
    pairs = [pair(0, "A", 0.3, 0.1), pair(0, "B", 0.1, 0.1), pair(1, "A", 0.2, 0.2)]
    result = promotion_test(pairs, horizon_bars=1)
    assert result.bar_times == 2
    assert result.brier_difference.mean == pytest.approx((-0.1 + 0.0) / 2)


def test_the_trial_waits_for_every_symbol_and_the_hours():
    rule = TrialRule(min_scored=3, min_hours=1.0)
    pairs = [pair(m, "A", 0.2, 0.2) for m in range(13)] + [pair(0, "B", 0.2, 0.2)]
    done, waiting = trial_progress(pairs, ["A", "B"], rule)
    assert not done and waiting == "judged pairs B 1/3"
    pairs += [pair(m, "B", 0.2, 0.2) for m in (1, 2)]
    assert trial_progress(pairs, ["A", "B"], rule) == (True, "complete")
    done, waiting = trial_progress(pairs[:3] + pairs[13:], ["A", "B"], rule)
    assert not done and "hours of bars" in waiting
