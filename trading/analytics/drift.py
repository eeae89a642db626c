"""Feature drift: do the live features still look like the ones the model was trained on?

Pure: arrays in, a report out. The analytics worker loads the model artifact's feature statistics
and the live feature rows, calls ``detect_drift`` and, when ``DriftReport.drift_detected``,
publishes ``drift.detected`` and asks the ai queue to retrain.

The measure is the population stability index (PSI) over the training quantile bins of each
feature::

    PSI = sum over bins of (live% - train%) * ln(live% / train%)

Rule of thumb: below 0.1 the population is stable, 0.1 to 0.25 a moderate shift worth watching,
above 0.25 a significant shift. The default alarm threshold, 0.2, sits inside the moderate band:
a model whose inputs moved that far is past due a retraining, and at 200 or more live rows a
feature that has not moved does not reach it by chance (see ``detect_drift``).

The training statistics of a feature are ``{"edges": [...], "fractions": [...]}``:
quantile bin edges from the training rows and the share of training rows in each bin.
``reference_distribution`` computes them with the binning ``population_stability_index`` uses,
so the artifact and the check agree on which bin a value on an edge falls in.

``ks_statistic`` is the two-sample Kolmogorov-Smirnov distance, for when a raw training sample is
at hand rather than bins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

# An empty bin would make ln(live% / train%) infinite; a bin holding nothing counts as holding
# this share instead. 1e-4 is the customary choice: an empty bin against a 10 % training bin
# then adds (0.1 - 0.0001) * ln(1000) ~ 0.69, a clear signal without swamping the rest.
PSI_EPSILON = 1e-4
DEFAULT_THRESHOLD = 0.2
DEFAULT_MIN_ROWS = 200
DEFAULT_BINS = 10


def reference_distribution(values: ArrayLike, bins: int = DEFAULT_BINS) -> dict[str, list[float]]:
    """The training statistics of one feature: ``{"edges": [...], "fractions": [...]}``.

    Edges are the quantiles of the finite ``values`` at ``0, 1/bins, ..., 1`` with duplicates
    removed (a feature with many equal values has fewer, wider bins), the outer two replaced by
    -inf and +inf so that every live value has a bin. ``fractions[i]`` is the share of values in
    ``[edges[i], edges[i + 1])``. Raises ``ValueError`` when there is no finite value or fewer
    than 2 bins are asked for.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    sample = _finite(values)
    if sample.size == 0:
        raise ValueError("no finite values to take a reference distribution from")
    inner = np.unique(np.quantile(sample, np.linspace(0.0, 1.0, bins + 1))[1:-1])
    edges = np.concatenate(([-np.inf], inner, [np.inf]))
    fractions = _bin_fractions(inner, sample)
    return {"edges": edges.tolist(), "fractions": fractions.tolist()}


def population_stability_index(
    expected_edges: Sequence[float],
    expected_fractions: Sequence[float],
    actual_values: ArrayLike,
) -> float:
    """The PSI of ``actual_values`` against a binned training distribution; 0 when they agree.

    ``expected_fractions[i]`` is the training share of bin ``i``. ``expected_edges`` are sorted
    and either bound every bin (``len(fractions) + 1`` edges, the outer two usually -inf and
    +inf) or are the inner edges only (``len(fractions) - 1``); either way the outer bins are
    open, so a live value beyond the training range lands in the first or last bin rather than
    nowhere. Bin ``i`` holds ``edges[i] <= x < edges[i + 1]``. Bins with no share on either side
    count as holding ``PSI_EPSILON``. NaN values are ignored; an
    infinity falls in an outer bin.

    Raises ``ValueError`` when the edges are unsorted or their count does not fit the fractions,
    the fractions are negative or do not sum to 1 (within 1e-6), or no value is left.
    """
    inner = _inner_edges(expected_edges, len(expected_fractions))
    expected = np.asarray(expected_fractions, dtype=float)
    if np.any(~np.isfinite(expected)) or np.any(expected < 0):
        raise ValueError("expected fractions must be finite and non-negative")
    if not math.isclose(float(expected.sum()), 1.0, abs_tol=1e-6):
        raise ValueError(f"expected fractions must sum to 1, got {expected.sum()}")
    actual_sample = _present(actual_values)
    if actual_sample.size == 0:
        raise ValueError("no actual values to compare")
    actual = _bin_fractions(inner, actual_sample)
    expected = np.maximum(expected, PSI_EPSILON)
    actual = np.maximum(actual, PSI_EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(train_sample: ArrayLike, live_sample: ArrayLike) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical
    distribution functions, in [0, 1]; 0 for samples drawn alike, 1 for disjoint ones.

    NaN values are ignored. Raises ``ValueError`` when either sample has no value left.
    """
    train = np.sort(_present(train_sample))
    live = np.sort(_present(live_sample))
    if train.size == 0 or live.size == 0:
        raise ValueError("both samples need at least one value")
    # Both step functions only change at sample points, so the gap is largest at one of them.
    points = np.concatenate((train, live))
    train_cdf = np.searchsorted(train, points, side="right") / train.size
    live_cdf = np.searchsorted(live, points, side="right") / live.size
    return float(np.max(np.abs(train_cdf - live_cdf)))


@dataclass(frozen=True, slots=True)
class DriftReport:
    """The outcome of one drift check.

    ``psi`` maps each feature to its PSI (empty when the data did not suffice); ``drifted``
    lists the features whose PSI is above ``threshold``, worst first. ``sufficient_data`` is
    False when fewer than ``min_rows`` usable live rows were given: then nothing is concluded,
    and ``drift_detected`` is False rather than a false alarm.
    """

    threshold: float
    min_rows: int
    live_rows: int
    ignored_rows: int
    psi: dict[str, float] = field(default_factory=dict)
    drifted: tuple[str, ...] = ()

    @property
    def sufficient_data(self) -> bool:
        return self.live_rows >= self.min_rows

    @property
    def max_psi(self) -> float | None:
        """The largest PSI over the features, or None when none was computed."""
        return max(self.psi.values(), default=None)

    @property
    def drift_detected(self) -> bool:
        return self.sufficient_data and bool(self.drifted)

    @property
    def summary(self) -> str:
        """One line for an operator: what was concluded, and from how much data."""
        if not self.sufficient_data:
            return (
                f"insufficient data: {self.live_rows} usable live rows, "
                f"{self.min_rows} needed to judge drift"
            )
        if self.drifted:
            worst = ", ".join(f"{name} (PSI {self.psi[name]:.3f})" for name in self.drifted)
            return f"drift over PSI {self.threshold}: {worst}"
        return f"no drift: max PSI {self.max_psi:.3f} over {self.live_rows} rows"

    def as_json(self) -> dict[str, Any]:
        """A dict that ``json.dumps(..., allow_nan=False)`` accepts (PSI values are finite)."""
        return {
            "drift_detected": self.drift_detected,
            "sufficient_data": self.sufficient_data,
            "summary": self.summary,
            "threshold": self.threshold,
            "min_rows": self.min_rows,
            "live_rows": self.live_rows,
            "ignored_rows": self.ignored_rows,
            "max_psi": self.max_psi,
            "psi": dict(self.psi),
            "drifted": list(self.drifted),
        }


def detect_drift(
    feature_names: Sequence[str],
    training_stats: Mapping[str, Mapping[str, Sequence[float]]],
    live_rows: ArrayLike,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> DriftReport:
    """The PSI of every feature of ``live_rows`` against its training statistics.

    ``live_rows`` is 2-D, one row per bar and one column per name in ``feature_names``, in that
    order. A row holding a NaN or an infinity (a warm-up bar whose windows are not yet full) is
    ignored and counted in ``ignored_rows``. With fewer than ``min_rows`` usable rows no PSI is
    computed and the report says the data was insufficient.

    Why 200 rows by default: when nothing drifted, ``rows * PSI`` is roughly chi-squared with
    ``bins - 1`` degrees of freedom, so with 10 bins a feature reaches PSI 0.2 by chance with
    probability P(chi2_9 > 40), under 1e-5, at 200 rows, but about 2 % at 100 rows, too often
    for an alarm that triggers a retraining. That assumes independent rows; features over
    rolling windows are autocorrelated, so a short live window measures the current regime as
    much as the model's decay, and the window should span many times the longest feature window.

    Raises ``ValueError`` when ``live_rows`` is not 2-D with one column per feature, a feature
    has no training statistics, the statistics are malformed (see
    ``population_stability_index``), ``threshold`` is not positive or ``min_rows`` is below 1.
    """
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    if min_rows < 1:
        raise ValueError(f"min_rows must be at least 1, got {min_rows}")
    names = list(feature_names)
    missing = [name for name in names if name not in training_stats]
    if missing:
        raise ValueError(f"no training statistics for {', '.join(missing)}")
    rows = np.asarray(live_rows, dtype=float)
    if rows.size == 0:
        rows = rows.reshape(0, len(names))
    if rows.ndim != 2 or rows.shape[1] != len(names):
        raise ValueError(f"live rows must be 2-D with {len(names)} columns, got shape {rows.shape}")
    usable = np.all(np.isfinite(rows), axis=1)
    rows_used = int(usable.sum())
    report = DriftReport(
        threshold=threshold,
        min_rows=min_rows,
        live_rows=rows_used,
        ignored_rows=len(rows) - rows_used,
    )
    if not report.sufficient_data:
        return report
    clean = rows[usable]
    psi = {
        name: population_stability_index(
            training_stats[name]["edges"], training_stats[name]["fractions"], clean[:, column]
        )
        for column, name in enumerate(names)
    }
    drifted = sorted((name for name in names if psi[name] > threshold), key=lambda n: -psi[n])
    return DriftReport(
        threshold=threshold,
        min_rows=min_rows,
        live_rows=rows_used,
        ignored_rows=report.ignored_rows,
        psi=psi,
        drifted=tuple(drifted),
    )


def _inner_edges(edges: Sequence[float], bins: int) -> NDArray[np.float64]:
    """The edges between bins, the outer bins being open; see ``population_stability_index``."""
    if bins < 1:
        raise ValueError("expected fractions must name at least one bin")
    array = np.asarray(edges, dtype=float)
    if array.ndim != 1 or np.any(np.isnan(array)):
        raise ValueError("edges must be a flat list of numbers")
    if np.any(np.diff(array) < 0):
        raise ValueError("edges must be sorted")
    if len(array) == bins + 1:
        inner = array[1:-1]
    elif len(array) == bins - 1:
        inner = array
    else:
        raise ValueError(
            f"{len(array)} edges do not fit {bins} bins: give {bins + 1} edges, or the "
            f"{bins - 1} inner ones"
        )
    if np.any(np.isinf(inner)):
        raise ValueError("only the outermost edges may be infinite")
    return inner


def _bin_fractions(inner_edges: NDArray[np.float64], values: NDArray[np.float64]) -> NDArray:
    # side="right": a value equal to an edge belongs to the bin that edge opens.
    bins = np.searchsorted(inner_edges, values, side="right")
    counts = np.bincount(bins, minlength=len(inner_edges) + 1)
    return counts / values.size


def _finite(values: ArrayLike) -> NDArray[np.float64]:
    """The finite values, flattened; NaN and infinities dropped."""
    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def _present(values: ArrayLike) -> NDArray[np.float64]:
    """The values that are not NaN, flattened; an infinity stays (it has an outer bin)."""
    array = np.asarray(values, dtype=float).ravel()
    return array[~np.isnan(array)]
