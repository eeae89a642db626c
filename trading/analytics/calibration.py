"""Live scores of the model: hit rate and calibration, per model version.

Pure: predictions and outcomes in, scores out. The analytics worker gathers the
``learning.recorded`` events of a model version (the signal's side and confidence, and how the
market moved over the signal's horizon) and calls ``score_model_version`` or the functions below.

A signal's confidence is the model's probability that its side is right, so the outcome to
calibrate it against is whether the side was right: ``side_hits`` makes those outcomes. A model is
well calibrated when, of the signals it gave 0.7, about 70 % were right.

Probabilities and moves may be floats or Decimals; scores are floats. Every score of an empty
input is None: no signals, no evidence, and not a score of zero.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Number = Decimal | float | int

DEFAULT_BINS = 10
_BUY_SIDES = {"BUY", "LONG"}
_SELL_SIDES = {"SELL", "SHORT"}


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """One probability band ``[lower, upper)`` (the last band includes 1.0).

    ``mean_predicted`` is the mean probability of the predictions in the band and
    ``observed_frequency`` the share of them whose outcome was 1; both None when ``count`` is 0.
    """

    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    observed_frequency: float | None

    @property
    def gap(self) -> float | None:
        """Observed minus predicted: positive when the model was under-confident in this band."""
        if self.mean_predicted is None or self.observed_frequency is None:
            return None
        return self.observed_frequency - self.mean_predicted

    def as_json(self) -> dict[str, Any]:
        return {
            "lower": self.lower,
            "upper": self.upper,
            "count": self.count,
            "mean_predicted": self.mean_predicted,
            "observed_frequency": self.observed_frequency,
        }


def calibration_table(
    probabilities: Sequence[Number], outcomes: Sequence[Number | bool], bins: int = DEFAULT_BINS
) -> list[CalibrationBin]:
    """The reliability table: ``bins`` equal-width bands over [0, 1], every band listed (empty
    ones with count 0), lowest first.

    ``outcomes[i]`` is 1 (or True) when the event predicted with ``probabilities[i]`` happened, 0
    (or False) when not. Raises ``ValueError`` when the lengths differ, a probability is outside
    [0, 1], an outcome is not 0 or 1, or ``bins`` is below 1.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    pairs = _pairs(probabilities, outcomes)
    members: list[list[tuple[float, int]]] = [[] for _ in range(bins)]
    for probability, outcome in pairs:
        members[_band(probability, bins)].append((probability, outcome))
    table = []
    for index, band in enumerate(members):
        count = len(band)
        table.append(
            CalibrationBin(
                lower=index / bins,
                upper=(index + 1) / bins,
                count=count,
                mean_predicted=math.fsum(p for p, _ in band) / count if count else None,
                observed_frequency=sum(o for _, o in band) / count if count else None,
            )
        )
    return table


def expected_calibration_error(
    probabilities: Sequence[Number], outcomes: Sequence[Number | bool], bins: int = DEFAULT_BINS
) -> float | None:
    """The count-weighted mean of ``|observed_frequency - mean_predicted|`` over the bands of
    ``calibration_table``, in [0, 1]; 0 for a perfectly calibrated model, None for no
    predictions. Raises ``ValueError`` as ``calibration_table`` does.
    """
    table = calibration_table(probabilities, outcomes, bins)
    total = sum(band.count for band in table)
    if total == 0:
        return None
    return math.fsum(band.count * abs(band.gap) for band in table if band.gap is not None) / total


def brier_score(probabilities: Sequence[Number], outcomes: Sequence[Number | bool]) -> float | None:
    """The mean of ``(probability - outcome) ** 2``, in [0, 1]; lower is better, 0.25 is what
    always saying 0.5 scores. None for no predictions. Raises ``ValueError`` as
    ``calibration_table`` does.
    """
    pairs = _pairs(probabilities, outcomes)
    if not pairs:
        return None
    return math.fsum((p - o) ** 2 for p, o in pairs) / len(pairs)


def side_hits(predicted_sides: Sequence[str], realized_outcomes: Sequence[Number]) -> list[bool]:
    """Whether each predicted side was right.

    ``predicted_sides`` are ``"BUY"`` or ``"SELL"`` (any case; ``"LONG"`` and ``"SHORT"`` too, and
    the ``Side`` enum, a ``StrEnum``). ``realized_outcomes`` are the signed moves of the market
    over each signal's horizon (a price change or a return; only the sign counts). A BUY is right
    when the market rose, a SELL when it fell; a flat market proves neither right. Raises
    ``ValueError`` when the lengths differ, a side is unknown or a move is not a finite number.
    """
    if len(predicted_sides) != len(realized_outcomes):
        raise ValueError(
            f"{len(predicted_sides)} sides and {len(realized_outcomes)} outcomes do not pair up"
        )
    hits = []
    for side, move in zip(predicted_sides, realized_outcomes, strict=True):
        direction = _direction(side)
        value = _number("realized outcome", move)
        hits.append(value * direction > 0)
    return hits


def hit_rate(predicted_sides: Sequence[str], realized_outcomes: Sequence[Number]) -> float | None:
    """The share of signals whose side was right (see ``side_hits``), or None for no signals."""
    hits = side_hits(predicted_sides, realized_outcomes)
    if not hits:
        return None
    return sum(hits) / len(hits)


@dataclass(frozen=True, slots=True)
class ModelScore:
    """The live scores of one model version; see ``score_model_version``."""

    model_version: str
    signals: int
    hit_rate: float | None
    brier_score: float | None
    expected_calibration_error: float | None
    calibration: tuple[CalibrationBin, ...]

    def as_json(self) -> dict[str, Any]:
        """A dict ``json.dumps`` accepts."""
        return {
            "model_version": self.model_version,
            "signals": self.signals,
            "hit_rate": self.hit_rate,
            "brier_score": self.brier_score,
            "expected_calibration_error": self.expected_calibration_error,
            "calibration": [band.as_json() for band in self.calibration],
        }


def score_model_version(
    model_version: str,
    predicted_sides: Sequence[str],
    confidences: Sequence[Number],
    realized_outcomes: Sequence[Number],
    bins: int = DEFAULT_BINS,
) -> ModelScore:
    """Hit rate, Brier score and calibration of one model version's signals.

    ``confidences[i]`` is the probability the model gave to ``predicted_sides[i]`` being right;
    it is scored against ``side_hits``. Raises ``ValueError`` as ``side_hits`` and
    ``calibration_table`` do.
    """
    hits = side_hits(predicted_sides, realized_outcomes)
    return ModelScore(
        model_version=model_version,
        signals=len(hits),
        hit_rate=sum(hits) / len(hits) if hits else None,
        brier_score=brier_score(confidences, hits),
        expected_calibration_error=expected_calibration_error(confidences, hits, bins),
        calibration=tuple(calibration_table(confidences, hits, bins)),
    )


def _pairs(
    probabilities: Sequence[Number], outcomes: Sequence[Number | bool]
) -> list[tuple[float, int]]:
    if len(probabilities) != len(outcomes):
        raise ValueError(
            f"{len(probabilities)} probabilities and {len(outcomes)} outcomes do not pair up"
        )
    pairs = []
    for raw_probability, raw_outcome in zip(probabilities, outcomes, strict=True):
        probability = _number("probability", raw_probability)
        if not 0 <= probability <= 1:
            raise ValueError(f"a probability must be in [0, 1], got {raw_probability!r}")
        if raw_outcome not in (0, 1):  # True == 1 and False == 0, so bools pass
            raise ValueError(f"an outcome must be 0 or 1, got {raw_outcome!r}")
        pairs.append((probability, int(raw_outcome)))
    return pairs


def _band(probability: float, bins: int) -> int:
    # In Decimal, from the float's shortest repr: 0.29 * 100 is 28.999999999999996 in floats,
    # which would put 0.29 below the band [0.29, 0.30) it is the lower edge of.
    index = int(Decimal(repr(probability)) * bins)
    # A probability of exactly 1.0 belongs to the last band, not to one past it.
    return min(index, bins - 1)


def _direction(side: object) -> int:
    name = str(side).upper() if isinstance(side, str) else None
    if name in _BUY_SIDES:
        return 1
    if name in _SELL_SIDES:
        return -1
    raise ValueError(f"a side must be BUY or SELL, got {side!r}")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Decimal | numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number
