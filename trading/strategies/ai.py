"""The ai model as a strategy: on each closed bar, the direction model's side and calibrated
confidence for ``notional``, from the features of the window (``trading.ai.features``, the
code path training used)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from trading.ai.features import FEATURE_NAMES, WARMUP_BARS, compute_features, latest_features
from trading.ai.model import ModelArtifact, predict, predict_rows
from trading.marketdata.bars import Bar
from trading.strategies.base import SignalIntent

KIND = "ai_model"
_CONFIDENCE_SCALE = 1e6  # the confidence is rounded to 6 places
_MARGIN = 1e-12


@dataclass(frozen=True)
class AiModel:
    model: ModelArtifact
    notional: Decimal
    kind: str = KIND
    warmup: int = WARMUP_BARS

    @property
    def version(self) -> str:
        return self.model.version

    def on_bar(self, window: Sequence[Bar]) -> list[SignalIntent]:
        if len(window) < self.warmup:
            return []
        row = latest_features(window)
        if not np.all(np.isfinite(row)):
            return []
        return [self._intent(window[-1].symbol, row, *predict(self.model, row))]

    def on_series(self, bars: Sequence[Bar], start: int) -> list[list[SignalIntent]]:
        # Row i of the series' features is, bit for bit, the row of the window ending at bar i
        # (``trading.ai.features``); the rows are predicted in one call of the estimator. BLAS
        # sums a batch's dot products in another order than one row's, so a probability may
        # differ in its last bits: where that could move the side or the rounded confidence,
        # the row is predicted alone, as ``on_bar`` does, so the decisions are the same.
        rows = compute_features(bars)
        first = max(start, self.warmup - 1)
        # The rows with every feature finite, as ``on_bar`` asks of its one row.
        finite = np.isfinite(rows[first:]).all(axis=1)
        ready = (np.flatnonzero(finite) + first).tolist()
        out: list[list[SignalIntent]] = [[] for _ in range(start, len(bars))]
        for i, decision in zip(ready, predict_rows(self.model, rows[ready]), strict=True):
            if _near_a_boundary(decision[1]):
                decision = predict(self.model, rows[i])
            out[i - start] = [self._intent(bars[i].symbol, rows[i], *decision)]
        return out

    def _intent(
        self, symbol: str, row: np.ndarray, side: str, confidence: float, p_up: float
    ) -> SignalIntent:
        details = {
            "model_version": self.model.version,
            "probability_up": float(p_up),
            # ``tolist`` gives each value as the float ``float(v)`` would.
            "features": dict(zip(FEATURE_NAMES, row.tolist(), strict=True)),
        }
        return SignalIntent(
            symbol,
            side,
            Decimal(str(round(confidence, 6))),
            notional=self.notional,
            details=details,
        )


def _near_a_boundary(confidence: float) -> bool:
    """Whether a change of the confidence far beyond a few units in the last place (1e-12)
    could change its side (at 0.5) or its rounding to 6 places."""
    scaled = confidence * _CONFIDENCE_SCALE
    return confidence - 0.5 < _MARGIN or abs(scaled - math.floor(scaled) - 0.5) < _MARGIN * (
        _CONFIDENCE_SCALE
    )
