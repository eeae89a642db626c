"""When a challenger replaces the champion: pure arithmetic on paired scores, no database.

A challenger (a version newly trained, on schedule, by hand or after drift) does not serve. For
every bar the champion signals on, the challenger's prediction on the same feature row is scored
too, at the same horizon and against the same bar (``trading.ai.live``). Each such signal is a
*pair*: the champion's Brier score and hit, and the challenger's.

The trial ends once every symbol has ``min_scored`` judged pairs and the pairs span ``min_hours``
of market time (bar close times, so a replay at one bar a second concludes in minutes). Then:

    promote  iff  the 95% confidence interval of the mean paired Brier difference
                  (challenger - champion) lies entirely below 0
             and  the challenger's hit rate on the pairs is not below the champion's.

The interval is a t-interval with a Newey-West (HAC) standard error: the differences are first
averaged per bar time (the symbols of one moment move together), and the series of those means is
treated as autocorrelated up to ``horizon - 1`` lags, because the labels of bars less than a
horizon apart share part of their forward window. Treating the pairs as independent would make
the interval several times too narrow, and a challenger would be promoted on noise.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from scipy.stats import t as student_t

CONFIDENCE = 0.95
TEST_STATEMENT = (
    "promote when the 95% confidence interval of the mean paired Brier score difference "
    "(challenger - champion; per-bar means, Newey-West t-interval with horizon - 1 lags) lies "
    "entirely below 0 and the challenger's hit rate on the same signals is not below the "
    "champion's"
)


@dataclass(frozen=True)
class Pair:
    """One signal judged for both versions."""

    symbol: str
    bar_close_time: datetime
    champion_brier: float
    challenger_brier: float
    champion_hit: bool
    challenger_hit: bool


@dataclass(frozen=True)
class TrialRule:
    min_scored: int  # judged pairs per symbol
    min_hours: float  # market time the pairs span, first to last bar


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    standard_error: float
    n: int  # the points of the series (bar times)
    lags: int


@dataclass(frozen=True)
class TestResult:
    pairs: int
    bar_times: int
    champion_brier: float
    challenger_brier: float
    champion_hit_rate: float
    challenger_hit_rate: float
    brier_difference: Interval
    brier_better: bool  # the interval's upper end is below 0
    hit_rate_not_worse: bool
    promote: bool

    def as_json(self) -> dict:
        return {"test": TEST_STATEMENT, **asdict(self)}


def trial_progress(
    pairs: Sequence[Pair], symbols: Sequence[str], rule: TrialRule
) -> tuple[bool, str]:
    """Whether the trial is over, and what it is waiting for (or "complete")."""
    counts = Counter(pair.symbol for pair in pairs)
    short = {s: counts.get(s, 0) for s in symbols if counts.get(s, 0) < rule.min_scored}
    hours = 0.0
    if pairs:
        times = [pair.bar_close_time for pair in pairs]
        hours = (max(times) - min(times)).total_seconds() / 3600
    waiting = []
    if short:
        waiting.append(
            "judged pairs " + ", ".join(f"{s} {n}/{rule.min_scored}" for s, n in short.items())
        )
    if hours < rule.min_hours:
        waiting.append(f"{hours:.2f}/{rule.min_hours:g} hours of bars")
    return (not waiting, "; ".join(waiting) or "complete")


def newey_west_interval(
    series: Sequence[float], lags: int, confidence: float = CONFIDENCE
) -> Interval:
    """The t-interval of the mean of ``series`` with a Newey-West (Bartlett kernel) standard
    error over ``lags`` lags. Raises ValueError for fewer than two points."""
    n = len(series)
    if n < 2:
        raise ValueError(f"an interval needs at least two points, got {n}")
    lags = max(0, min(lags, n - 1))
    mean = sum(series) / n
    centred = [value - mean for value in series]

    def autocovariance(k: int) -> float:
        return sum(centred[i] * centred[i - k] for i in range(k, n)) / n

    variance = autocovariance(0)
    for k in range(1, lags + 1):
        variance += 2 * (1 - k / (lags + 1)) * autocovariance(k)
    standard_error = math.sqrt(max(variance, 0.0) / n)
    quantile = float(student_t.ppf(0.5 + confidence / 2, n - 1))
    return Interval(
        mean=mean,
        low=mean - quantile * standard_error,
        high=mean + quantile * standard_error,
        standard_error=standard_error,
        n=n,
        lags=lags,
    )


def promotion_test(pairs: Sequence[Pair], horizon_bars: int) -> TestResult:
    """The stated test on judged pairs. Raises ValueError with fewer than two bar times."""
    by_time: dict[datetime, list[float]] = {}
    for pair in pairs:
        by_time.setdefault(pair.bar_close_time, []).append(
            pair.challenger_brier - pair.champion_brier
        )
    series = [sum(values) / len(values) for _, values in sorted(by_time.items())]
    interval = newey_west_interval(series, horizon_bars - 1)
    n = len(pairs)
    champion_hits = sum(pair.champion_hit for pair in pairs) / n
    challenger_hits = sum(pair.challenger_hit for pair in pairs) / n
    brier_better = interval.high < 0
    not_worse = challenger_hits >= champion_hits
    return TestResult(
        pairs=n,
        bar_times=len(series),
        champion_brier=sum(pair.champion_brier for pair in pairs) / n,
        challenger_brier=sum(pair.challenger_brier for pair in pairs) / n,
        champion_hit_rate=champion_hits,
        challenger_hit_rate=challenger_hits,
        brier_difference=interval,
        brier_better=brier_better,
        hit_rate_not_worse=not_worse,
        promote=brier_better and not_worse,
    )
