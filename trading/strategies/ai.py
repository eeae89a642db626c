"""The ai model as a strategy: on each closed bar, the direction model's side and calibrated
confidence for ``notional``, from the features of the window (``trading.ai.features``, the
code path training used)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from trading.ai.features import FEATURE_NAMES, WARMUP_BARS, latest_features
from trading.ai.model import ModelArtifact, predict
from trading.marketdata.bars import Bar
from trading.strategies.base import SignalIntent

KIND = "ai_model"


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
        side, confidence, p_up = predict(self.model, row)
        details = {
            "model_version": self.model.version,
            "probability_up": float(p_up),
            "features": {n: float(v) for n, v in zip(FEATURE_NAMES, row, strict=True)},
        }
        return [
            SignalIntent(
                window[-1].symbol,
                side,
                Decimal(str(round(confidence, 6))),
                notional=self.notional,
                details=details,
            )
        ]
