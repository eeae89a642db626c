"""Estimators of known skill for challenger trials: one told the labels of the bars a test plays
(it is right with the probability it states), one told them and always wrong. Both live here,
importable by the worker processes that unpickle a stored artifact."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np

from trading.ai.features import latest_features
from trading.ai.model import ModelArtifact
from trading.marketdata.klines import load_bundled_bars


def row_key(row: np.ndarray) -> bytes:
    return np.round(np.asarray(row, dtype=float), 10).tobytes()


class LabelOracle:
    """p_up = ``p`` for rows it knows to go up and 1 - ``p`` for the others (the other way round
    when ``wrong``); 0.5 for rows it was not told about."""

    classes_ = np.array([0, 1])

    def __init__(self, labels: dict[bytes, int], p: float = 0.8, wrong: bool = False) -> None:
        self.labels, self.p, self.wrong = labels, p, wrong

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        p_up = []
        for row in np.atleast_2d(features):
            label = self.labels.get(row_key(row))
            if label is None:
                p_up.append(0.5)
                continue
            right = self.p if label == 1 else 1 - self.p
            p_up.append(1 - right if self.wrong else right)
        p = np.array(p_up)
        return np.column_stack([1 - p, p])


def labels_of(symbols, indices, horizon: int) -> dict[bytes, int]:
    """The live feature row of each bundled bar at ``indices`` -> did the close rise ``horizon``
    bars later."""
    table = {}
    for symbol in symbols:
        bars = load_bundled_bars(symbol)
        for i in indices:
            row = latest_features(bars[: i + 1])
            table[row_key(row)] = int(bars[i + horizon].close > bars[i].close)
    return table


def oracle_artifact(base: ModelArtifact, name: str, labels: dict[bytes, int], *, wrong: bool):
    """``base`` with the oracle as its estimator, as a distinct, later version."""
    return dataclasses.replace(
        base,
        version=f"m-{name}",
        trained_at=base.trained_at + timedelta(minutes=1),
        estimator=LabelOracle(labels, wrong=wrong),
    )
