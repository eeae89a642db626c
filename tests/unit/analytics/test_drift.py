"""Drift: PSI and KS of live features against the training distribution, and the drift report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from trading.analytics.drift import (
    PSI_EPSILON,
    detect_drift,
    ks_statistic,
    population_stability_index,
    reference_distribution,
)

FEATURES = ["return_5", "rsi_14", "volume_z"]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20250901)


def features(rng: np.random.Generator, rows: int, shift: tuple[float, ...] = (0, 0, 0)):
    """Rows of three differently shaped features; ``shift`` moves each by that many stdevs."""
    return np.column_stack(
        [
            rng.normal(0.0, 0.01, rows) + shift[0] * 0.01,
            rng.uniform(20, 80, rows) + shift[1] * 60 / math.sqrt(12),
            rng.standard_t(5, rows) + shift[2] * math.sqrt(5 / 3),
        ]
    )


@pytest.fixture
def training(rng):
    rows = features(rng, 20_000)
    return {name: reference_distribution(rows[:, i]) for i, name in enumerate(FEATURES)}


# -- population stability index --------------------------------------------------------------------


def test_psi_of_a_hand_binned_example():
    # training: half below 0, half above. live: 1 of 4 below (-1), 3 of 4 at or above (1, 2, 3)
    # PSI = (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    #     = 0.25 x 0.693147 + 0.25 x 0.405465 = 0.274653
    psi = population_stability_index([-math.inf, 0, math.inf], [0.5, 0.5], [-1, 1, 2, 3])

    assert psi == pytest.approx(0.274653, abs=1e-6)


def test_psi_counts_an_empty_bin_as_epsilon_instead_of_an_infinity():
    # live all above 0: (1e-4 - 0.5) ln(1e-4 / 0.5) + (1 - 0.5) ln(1 / 0.5) = 4.257745 + 0.346574
    psi = population_stability_index([0], [0.5, 0.5], [1, 2, 3])

    assert PSI_EPSILON == 1e-4
    assert psi == pytest.approx(4.604318, abs=1e-6)


def test_psi_takes_inner_edges_or_bounded_edges_alike_and_keeps_outliers_in_the_outer_bins():
    live = [-50, -1, 0.5, 2, 99]  # -50 and 99 are beyond the training range [-10, 10]
    fractions = [0.25, 0.25, 0.25, 0.25]

    inner = population_stability_index([-1, 0, 1], fractions, live)
    bounded = population_stability_index([-10, -1, 0, 1, 10], fractions, live)
    open_ended = population_stability_index([-math.inf, -1, 0, 1, math.inf], fractions, live)

    assert inner == bounded == open_ended
    # bins: [-50] [-1] [0.5] [2, 99] -> 0.2, 0.2, 0.2, 0.4 against 0.25 each
    expected = 3 * (0.2 - 0.25) * math.log(0.2 / 0.25) + (0.4 - 0.25) * math.log(0.4 / 0.25)
    assert inner == pytest.approx(expected)


def test_psi_puts_a_value_on_an_edge_in_the_bin_that_edge_opens():
    # 0 is the edge: it belongs to [0, inf), matching the training fractions' binning
    assert population_stability_index([0], [0.0, 1.0], [0.0, 0.0]) == 0.0


def test_psi_is_near_zero_for_a_sample_from_the_training_distribution(rng, training):
    live = features(rng, 2_000)

    for i, name in enumerate(FEATURES):
        psi = population_stability_index(
            training[name]["edges"], training[name]["fractions"], live[:, i]
        )
        assert psi < 0.02, name


def test_psi_is_above_the_significant_shift_level_for_a_shifted_sample(rng, training):
    live = features(rng, 2_000, shift=(1, 1, 1))

    for i, name in enumerate(FEATURES):
        psi = population_stability_index(
            training[name]["edges"], training[name]["fractions"], live[:, i]
        )
        assert psi > 0.25, name


def test_psi_refuses_edges_that_do_not_fit_the_fractions():
    with pytest.raises(ValueError, match="do not fit"):
        population_stability_index([0, 1], [0.5, 0.5], [0.3])
    with pytest.raises(ValueError, match="sorted"):
        population_stability_index([-math.inf, 1, 0, math.inf], [0.3, 0.3, 0.4], [0.3])
    with pytest.raises(ValueError, match="sum to 1"):
        population_stability_index([0], [0.5, 0.6], [0.3])


def test_reference_distribution_has_equal_quantile_bins_and_open_ends(rng):
    reference = reference_distribution(rng.normal(size=10_000), bins=10)

    assert len(reference["edges"]) == 11
    assert reference["edges"][0] == -math.inf
    assert reference["edges"][-1] == math.inf
    assert reference["fractions"] == pytest.approx([0.1] * 10, abs=1e-3)


def test_reference_distribution_merges_the_bins_of_a_feature_with_repeated_values():
    # 80 % zeros: the quantiles 0.1 .. 0.8 are all 0, so those bins collapse into one
    values = [0.0] * 80 + list(np.linspace(1, 2, 20))

    reference = reference_distribution(values, bins=10)

    assert len(reference["fractions"]) == len(reference["edges"]) - 1 < 10
    assert sum(reference["fractions"]) == pytest.approx(1.0)
    assert population_stability_index(reference["edges"], reference["fractions"], values) == (
        pytest.approx(0.0)
    )


# -- Kolmogorov-Smirnov ----------------------------------------------------------------------------


def test_ks_statistic_of_a_hand_computed_example():
    # ECDFs of [1, 2, 3, 4] and [3, 4, 5, 6]: at 2, 0.5 vs 0; at 4, 1 vs 0.5 -> largest gap 0.5
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    assert ks_statistic([1, 2], [3, 4]) == 1.0
    assert ks_statistic([1, 2, 3], [3, 2, 1]) == 0.0


def test_ks_statistic_agrees_with_scipy(rng):
    train, live = rng.normal(size=500), rng.normal(0.2, 1.3, size=300)

    assert ks_statistic(train, live) == pytest.approx(stats.ks_2samp(train, live).statistic)


def test_ks_statistic_is_small_on_the_training_distribution_and_large_on_a_shifted_one(rng):
    train = rng.normal(size=5_000)

    assert ks_statistic(train, rng.normal(size=2_000)) < 0.05
    assert ks_statistic(train, rng.normal(1.0, 1.0, size=2_000)) > 0.3


def test_ks_statistic_ignores_nan_and_needs_values():
    assert ks_statistic([1, 2, math.nan], [1, 2]) == 0.0
    with pytest.raises(ValueError, match="at least one value"):
        ks_statistic([math.nan], [1.0])


# -- the drift check -------------------------------------------------------------------------------


def test_drift_does_not_fire_on_the_training_distribution(rng, training):
    report = detect_drift(FEATURES, training, features(rng, 500))

    assert report.sufficient_data
    assert not report.drift_detected
    assert report.drifted == ()
    assert set(report.psi) == set(FEATURES)
    assert report.max_psi < 0.1
    assert report.summary.startswith("no drift")


def test_drift_fires_on_a_shifted_distribution_and_names_the_shifted_feature(rng, training):
    report = detect_drift(FEATURES, training, features(rng, 500, shift=(0, 1, 0)))

    assert report.drift_detected
    assert report.drifted == ("rsi_14",)
    assert report.max_psi == report.psi["rsi_14"] > 0.25
    assert "rsi_14" in report.summary


def test_drifted_features_are_listed_worst_first(rng, training):
    report = detect_drift(FEATURES, training, features(rng, 500, shift=(0.8, 0, 2)))

    assert report.drifted == ("volume_z", "return_5")


def test_drift_alarms_only_above_the_threshold(rng, training):
    live = features(rng, 500, shift=(0, 1, 0))
    psi = detect_drift(FEATURES, training, live).psi["rsi_14"]

    assert not detect_drift(FEATURES, training, live, threshold=psi).drift_detected
    assert detect_drift(FEATURES, training, live, threshold=psi * 0.99).drift_detected


def test_rows_with_nan_are_ignored(rng, training):
    live = features(rng, 300)
    warm_up = np.full((40, 3), np.nan)
    warm_up[:, 1] = 50.0  # a partly computed row still counts as incomplete

    report = detect_drift(FEATURES, training, np.vstack([warm_up, live]))

    assert (report.live_rows, report.ignored_rows) == (300, 40)
    assert not report.drift_detected


def test_too_few_live_rows_report_insufficient_data_rather_than_a_false_alarm(rng, training):
    shifted = features(rng, 50, shift=(3, 3, 3))

    report = detect_drift(FEATURES, training, shifted)

    assert not report.sufficient_data
    assert not report.drift_detected
    assert report.psi == {}
    assert report.max_psi is None
    assert report.summary.startswith("insufficient data: 50 usable live rows, 200 needed")


def test_no_live_rows_at_all_is_insufficient_data(training):
    report = detect_drift(FEATURES, training, [])

    assert (report.live_rows, report.sufficient_data, report.drift_detected) == (0, False, False)


def test_the_report_is_strict_json(rng, training):
    report = detect_drift(FEATURES, training, features(rng, 300, shift=(0, 1, 0)))

    encoded = json.loads(json.dumps(report.as_json(), allow_nan=False))

    assert encoded["drift_detected"] is True
    assert encoded["drifted"] == ["rsi_14"]
    assert set(encoded["psi"]) == set(FEATURES)


def test_drift_refuses_rows_that_do_not_match_the_features(rng, training):
    with pytest.raises(ValueError, match="3 columns"):
        detect_drift(FEATURES, training, rng.normal(size=(300, 2)))
    with pytest.raises(ValueError, match="no training statistics for macd"):
        detect_drift([*FEATURES, "macd"], training, rng.normal(size=(300, 4)))
