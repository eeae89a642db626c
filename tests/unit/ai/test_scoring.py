"""Judging a signal at its horizon: hit, Brier score, log loss, buckets and the net return."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from trading.ai.scoring import (
    Outcome,
    brier_score,
    bucket_label,
    confidence_bucket,
    forward_return,
    log_loss,
    score_signal,
    summarize,
)

FEE = Decimal("0.001")
SLIP = Decimal("5")  # basis points


def test_the_brier_score_is_the_squared_error_of_p_up():
    assert brier_score(0.6, True) == pytest.approx(0.16)
    assert brier_score(0.6, False) == pytest.approx(0.36)
    assert brier_score(0.5, True) == pytest.approx(0.25)


def test_the_log_loss_is_minus_the_log_of_the_probability_given_to_what_happened():
    assert log_loss(0.8, True) == pytest.approx(-math.log(0.8))
    assert log_loss(0.8, False) == pytest.approx(-math.log(0.2))
    assert log_loss(0.5, False) == pytest.approx(math.log(2))


def test_a_certain_wrong_probability_has_a_large_finite_log_loss():
    assert log_loss(1.0, False) == pytest.approx(-math.log(1e-15), rel=1e-3)


@pytest.mark.parametrize(
    ("confidence", "bucket"),
    [(0.5, 0), (0.5499, 0), (0.55, 1), (0.5501, 1), (0.6, 2), (0.74, 4), (0.95, 9), (1.0, 9)],
)
def test_confidences_fall_into_ten_buckets_of_width_0_05(confidence, bucket):
    assert confidence_bucket(confidence) == bucket


def test_a_confidence_outside_0_5_to_1_has_no_bucket():
    with pytest.raises(ValueError, match=r"0\.49"):
        confidence_bucket(0.49)


def test_buckets_are_labelled_by_their_range():
    assert bucket_label(0) == "0.50-0.55"
    assert bucket_label(9) == "0.95-1.00"


def test_a_buy_pays_slippage_and_the_fee_on_both_legs():
    # Buy 1 at 100 * 1.0005 with 0.1% fee, sell at 110 * 0.9995 with 0.1% fee.
    expected = Decimal("110") * Decimal("0.9995") / (Decimal("100") * Decimal("1.0005"))
    expected = expected * Decimal("0.999") - Decimal("1.001")
    got = forward_return("BUY", Decimal("100"), Decimal("110"), fee_rate=FEE, slippage_bps=SLIP)
    assert got == expected
    assert float(got) == pytest.approx(0.0968, abs=1e-4)


def test_a_sell_gains_when_the_price_falls_less_the_costs():
    got = forward_return("SELL", Decimal("100"), Decimal("90"), fee_rate=FEE, slippage_bps=SLIP)
    # 1 - 0.001 - (90 * 1.0005 / (100 * 0.9995)) * 1.001
    assert float(got) == pytest.approx(0.0972, abs=1e-4)


def test_a_flat_price_loses_the_costs_whatever_the_side():
    for side in ("BUY", "SELL"):
        got = forward_return(side, Decimal("100"), Decimal("100"), fee_rate=FEE, slippage_bps=SLIP)
        assert float(got) == pytest.approx(-0.003, abs=1e-5)


def test_without_costs_the_return_is_the_price_move():
    free = {"fee_rate": Decimal(0), "slippage_bps": Decimal(0)}
    assert forward_return("BUY", Decimal("100"), Decimal("103"), **free) == Decimal("0.03")
    assert forward_return("SELL", Decimal("100"), Decimal("103"), **free) == Decimal("-0.03")


def test_a_sell_is_a_hit_when_the_close_does_not_rise():
    flat = score_signal("SELL", 0.45, Decimal("100"), Decimal("100"), fee_rate=FEE,
                        slippage_bps=SLIP)  # fmt: skip
    assert flat.up is False and flat.hit is True
    assert flat.brier == pytest.approx(0.45**2)
    rise = score_signal("SELL", 0.45, Decimal("100"), Decimal("101"), fee_rate=FEE,
                        slippage_bps=SLIP)  # fmt: skip
    assert rise.up is True and rise.hit is False
    assert rise.log_loss == pytest.approx(-math.log(0.45))


def test_a_summary_gives_the_reliability_curve_per_bucket():
    def outcome(hit: bool, forward: float) -> Outcome:
        return Outcome(up=hit, hit=hit, brier=0.2, log_loss=0.6, forward_return=forward)

    figures = summarize(
        [
            (0.51, outcome(True, 0.01)),
            (0.53, outcome(False, -0.02)),
            (0.52, outcome(False, -0.01)),
            (0.61, outcome(True, 0.03)),
        ],
        pending=2,
    )
    assert (figures.scored, figures.pending) == (4, 2)
    assert figures.hit_rate == pytest.approx(0.5)
    assert figures.mean_forward_return == pytest.approx(0.0025)
    low, high = figures.buckets
    assert (low.label, low.count) == ("0.50-0.55", 3)
    assert low.mean_confidence == pytest.approx(0.52)
    assert low.observed_rate == pytest.approx(1 / 3)
    assert low.mean_forward_return == pytest.approx(-2 / 300)
    assert (high.label, high.count, high.observed_rate) == ("0.60-0.65", 1, 1.0)


def test_a_summary_of_nothing_has_no_figures():
    figures = summarize([])
    assert (figures.scored, figures.hit_rate, figures.brier, figures.buckets) == (0, None, None, ())
