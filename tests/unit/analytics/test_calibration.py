"""Live model scores: calibration table, Brier score, ECE, hit rate, per model version."""

from __future__ import annotations

import json

import pytest

from trading.analytics.calibration import (
    brier_score,
    calibration_table,
    expected_calibration_error,
    hit_rate,
    score_model_version,
    side_hits,
)
from trading.ledger.book import Side

# Four predictions at 0.15 of which one happened, four at 0.75 of which three did, one at 1.0
# that did.
PROBABILITIES = [0.15] * 4 + [0.75] * 4 + [1.0]
OUTCOMES = [*[0, 0, 0, 1], *[1, 1, 1, 0], 1]


# -- calibration table -----------------------------------------------------------------------------


def test_calibration_table_compares_mean_prediction_with_observed_frequency_per_band():
    table = calibration_table(PROBABILITIES, OUTCOMES, bins=10)

    assert len(table) == 10
    assert [(band.lower, band.upper) for band in table[:2]] == [(0.0, 0.1), (0.1, 0.2)]
    assert [band.count for band in table] == [0, 4, 0, 0, 0, 0, 0, 4, 0, 1]
    # [0.1, 0.2): mean 0.15, 1 of 4 happened -> 0.25; under-confident by 0.1
    assert table[1].mean_predicted == pytest.approx(0.15)
    assert table[1].observed_frequency == 0.25
    assert table[1].gap == pytest.approx(0.10)
    # [0.7, 0.8): mean 0.75, 3 of 4 -> 0.75; calibrated
    assert table[7].mean_predicted == pytest.approx(0.75)
    assert table[7].observed_frequency == 0.75
    # 1.0 belongs to the last band, [0.9, 1.0]
    assert (table[9].mean_predicted, table[9].observed_frequency) == (1.0, 1.0)


def test_empty_bands_are_listed_with_no_means():
    band = calibration_table(PROBABILITIES, OUTCOMES, bins=10)[0]

    assert (band.count, band.mean_predicted, band.observed_frequency, band.gap) == (
        0,
        None,
        None,
        None,
    )


def test_a_probability_on_a_band_edge_opens_that_band():
    # 0.29 x 100 is 28.999999999999996 in floats; it still belongs to [0.29, 0.30)
    table = calibration_table([0.29, 0.3], [1, 0], bins=100)

    assert table[29].count == 1
    assert table[30].count == 1


def test_outcomes_may_be_booleans():
    table = calibration_table([0.6, 0.6], [True, False], bins=10)

    assert table[6].observed_frequency == 0.5


def test_calibration_refuses_bad_inputs():
    with pytest.raises(ValueError, match="pair up"):
        calibration_table([0.5], [1, 0])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        calibration_table([1.2], [1])
    with pytest.raises(ValueError, match="0 or 1"):
        calibration_table([0.5], [2])


# -- Brier score and ECE ---------------------------------------------------------------------------


def test_brier_score_is_the_mean_squared_gap_to_the_outcome():
    # 3 x (0.15 - 0)^2 + (0.15 - 1)^2 = 0.0675 + 0.7225 = 0.79
    # 3 x (0.75 - 1)^2 + (0.75 - 0)^2 = 0.1875 + 0.5625 = 0.75
    # (1.0 - 1)^2 = 0 -> (0.79 + 0.75 + 0) / 9 = 0.171111
    assert brier_score(PROBABILITIES, OUTCOMES) == pytest.approx(1.54 / 9)


def test_always_saying_one_half_scores_a_quarter():
    assert brier_score([0.5] * 4, [1, 0, 0, 1]) == 0.25


def test_expected_calibration_error_weights_each_band_gap_by_its_count():
    # band [0.1, 0.2): 4 x |0.25 - 0.15| = 0.4; [0.7, 0.8): 4 x 0 = 0; [0.9, 1]: 1 x 0 = 0
    # -> 0.4 / 9 = 0.044444
    assert expected_calibration_error(PROBABILITIES, OUTCOMES) == pytest.approx(0.4 / 9)


def test_a_perfectly_calibrated_model_has_no_calibration_error():
    # 0.25 four times with one hit, 0.75 four times with three
    probabilities = [0.25] * 4 + [0.75] * 4
    outcomes = [*[1, 0, 0, 0], *[1, 1, 1, 0]]

    assert expected_calibration_error(probabilities, outcomes) == pytest.approx(0.0)


def test_scores_of_no_predictions_are_none_not_zero():
    assert brier_score([], []) is None
    assert expected_calibration_error([], []) is None
    assert hit_rate([], []) is None


# -- hit rate --------------------------------------------------------------------------------------


def test_hit_rate_is_the_share_of_sides_the_market_proved_right():
    # BUY then up: hit; SELL then up: miss; BUY then down: miss; SELL then down: hit -> 2 / 4
    sides = ["BUY", "SELL", "BUY", "SELL"]
    moves = [1.0, 2.0, -0.5, -3.0]

    assert side_hits(sides, moves) == [True, False, False, True]
    assert hit_rate(sides, moves) == 0.5


def test_a_flat_market_proves_no_side_right():
    assert side_hits([Side.BUY, Side.SELL], [0, 0]) == [False, False]


def test_hit_rate_takes_the_side_enum_and_any_case():
    assert hit_rate([Side.BUY, "sell", "long", "SHORT"], [1, -1, 2, -2]) == 1.0


def test_hit_rate_refuses_an_unknown_side():
    with pytest.raises(ValueError, match="BUY or SELL"):
        hit_rate(["HOLD"], [1.0])


# -- per model version -----------------------------------------------------------------------------


def test_a_model_version_is_scored_on_whether_its_sides_were_right():
    # confidence is the probability the side is right: 0.8, 0.8 right; 0.6 wrong; 0.6 right
    score = score_model_version(
        "v3",
        predicted_sides=["BUY", "SELL", "BUY", "SELL"],
        confidences=[0.8, 0.8, 0.6, 0.6],
        realized_outcomes=[0.02, -0.01, -0.03, -0.005],
    )

    assert score.model_version == "v3"
    assert score.signals == 4
    assert score.hit_rate == 0.75
    # (0.2^2 + 0.2^2 + 0.6^2 + 0.4^2) / 4 = (0.04 + 0.04 + 0.36 + 0.16) / 4 = 0.15
    assert score.brier_score == pytest.approx(0.15)
    # [0.6, 0.7): predicted 0.6, observed 0.5; [0.8, 0.9): predicted 0.8, observed 1
    # -> (2 x 0.1 + 2 x 0.2) / 4 = 0.15
    assert score.expected_calibration_error == pytest.approx(0.15)
    assert json.loads(json.dumps(score.as_json(), allow_nan=False))["calibration"][8]["count"] == 2
