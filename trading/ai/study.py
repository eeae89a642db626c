"""Which features are worth the effort: every candidate set through the same walk-forward.

Each feature set is scored exactly as the model is trained (``trading.ai.training``): the rows of
all symbols pooled and ordered by close time, an expanding-window walk-forward with the label's
horizon as the gap between training and test, the same calibrated logistic regression. Beside
each figure stands the no-skill baseline of the same rows: the training folds' majority label
(accuracy), their base rate as p_up (Brier score, log loss), 0.5 (ROC AUC).

A set counts as beating the baseline only when the 95% confidence interval of its Brier score
minus the baseline's, over the scored rows, lies entirely below 0. The interval is the one the
promotion test uses (``trading.ai.promotion.newey_west_interval``): per-bar means of the
differences, Newey-West with horizon - 1 lags, since rows less than a horizon apart share part
of their label. The per-fold spread of the difference is reported too.

The candidate sets:

- ``base``: the serving model's eleven features, horizon 12 bars (1 hour of 5m bars).
- ``base_h48``: the same features, horizon 48 bars (4 hours).
- ``multi_timeframe``: ``base`` plus 12- and 24-hour log returns, an hourly RSI (14 one-hour
  changes) and the ratio of 2-hour to 24-hour realised volatility.
- ``cross_asset``: ``base`` plus BTCUSDT's 1-, 3- and 12-bar log returns and realised volatility
  at the same close time (for ETHUSDT and SOLUSDT the leader's move; for BTCUSDT its own).
- ``vol_scaled_label``: ``base``, with rows whose forward move is smaller than half the
  volatility expected over the horizon (realised_vol_24 * sqrt(12)) left out of training and
  scoring, so the label is the direction of a move that stands out of the noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from trading.ai.features import FEATURE_NAMES, compute_features
from trading.ai.model import HORIZON_BARS, direction_labels, predict_up_probability
from trading.ai.promotion import newey_west_interval
from trading.ai.training import Dataset, _fit, _pool, walk_forward_splits
from trading.marketdata.bars import Bar, datetime_to_ms

LEADER = "BTCUSDT"
_VOL = FEATURE_NAMES.index("realised_vol_24")


@dataclass(frozen=True)
class FeatureSet:
    name: str
    horizon: int
    extra_columns: (
        Callable[[str, Sequence[Bar], Mapping[str, Sequence[Bar]]], np.ndarray] | None
    ) = None
    min_move_in_vol: float = 0.0  # rows moving less than this many horizon-vols are left out


@dataclass(frozen=True)
class StudyRow:
    name: str
    horizon: int
    features: int
    rows: int
    accuracy: float
    baseline_accuracy: float
    roc_auc: float
    brier: float
    baseline_brier: float
    log_loss: float
    baseline_log_loss: float
    brier_difference: tuple[float, float, float]  # mean, 95% low, 95% high
    fold_brier_differences: tuple[float, ...]

    @property
    def beats_baseline(self) -> bool:
        return self.brier_difference[2] < 0


def _log_return(close: np.ndarray, lag: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    out[lag:] = np.log(close[lag:] / close[:-lag])
    return out


def _rolling_std(values: np.ndarray, window: int) -> np.ndarray:
    out = np.full(len(values), np.nan)
    for i in range(window, len(values) + 1):
        out[i - 1] = np.std(values[i - window : i], ddof=1)
    return out


def multi_timeframe(symbol: str, bars: Sequence[Bar], _all) -> np.ndarray:
    close = np.array([float(bar.close) for bar in bars])
    one_bar = _log_return(close, 1)
    hourly = close - np.concatenate([np.full(12, np.nan), close[:-12]])
    rsi = np.full(len(close), np.nan)
    for i in range(12 * 14, len(close)):
        changes = hourly[i - 12 * 13 : i + 1 : 12]
        gains, losses = changes[changes > 0].sum(), -changes[changes < 0].sum()
        rsi[i] = 50.0 if gains + losses == 0 else 100 * gains / (gains + losses)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = _rolling_std(one_bar, 24) / _rolling_std(one_bar, 288)
    return np.column_stack([_log_return(close, 144), _log_return(close, 288), rsi, ratio])


def cross_asset(symbol: str, bars: Sequence[Bar], everything) -> np.ndarray:
    leader = everything[LEADER]
    close = np.array([float(bar.close) for bar in leader])
    columns = np.column_stack(
        [_log_return(close, 1), _log_return(close, 3), _log_return(close, 12),
         _rolling_std(_log_return(close, 1), 24)]
    )  # fmt: skip
    at = {datetime_to_ms(bar.close_time): i for i, bar in enumerate(leader)}
    out = np.full((len(bars), columns.shape[1]), np.nan)
    for i, bar in enumerate(bars):
        j = at.get(datetime_to_ms(bar.close_time))
        if j is not None:
            out[i] = columns[j]
    return out


FEATURE_SETS = (
    FeatureSet("base", HORIZON_BARS),
    FeatureSet("base_h48", 48),
    FeatureSet("multi_timeframe", HORIZON_BARS, multi_timeframe),
    FeatureSet("cross_asset", HORIZON_BARS, cross_asset),
    FeatureSet("vol_scaled_label", HORIZON_BARS, min_move_in_vol=0.5),
)


def build_rows(feature_set: FeatureSet, bars_by_symbol: Mapping[str, Sequence[Bar]]) -> Dataset:
    parts = []
    for symbol in sorted(bars_by_symbol):
        bars = bars_by_symbol[symbol]
        features = compute_features(bars)
        if feature_set.extra_columns is not None:
            features = np.column_stack(
                [features, feature_set.extra_columns(symbol, bars, bars_by_symbol)]
            )
        close = np.array([float(bar.close) for bar in bars])
        labels = direction_labels(close, feature_set.horizon)
        keep = np.isfinite(features).all(axis=1) & ~np.isnan(labels)
        if feature_set.min_move_in_vol:
            move = np.abs(_log_return(close, feature_set.horizon))
            forward = np.full(len(close), np.nan)
            forward[: -feature_set.horizon] = move[feature_set.horizon :]
            expected = features[:, _VOL] * math.sqrt(feature_set.horizon)
            with np.errstate(invalid="ignore"):
                keep &= forward >= feature_set.min_move_in_vol * expected
        close_ms = np.array([datetime_to_ms(bar.close_time) for bar in bars], dtype=np.int64)
        symbols = np.full(int(keep.sum()), symbol)
        parts.append(Dataset(features[keep], labels[keep].astype(int), close_ms[keep], symbols))
    return _pool(parts)


def evaluate(
    feature_set: FeatureSet, bars_by_symbol: Mapping[str, Sequence[Bar]], folds: int = 5
) -> StudyRow:
    data = build_rows(feature_set, bars_by_symbol)
    h = feature_set.horizon
    truth, p_up, base_label, base_p, times, fold_diffs = [], [], [], [], [], []
    for train, test in walk_forward_splits(data.close_ms, folds, h):
        estimator = _fit(data, train, h)
        p = predict_up_probability(estimator, data.features[test])
        y = data.labels[test]
        rate = float(data.labels[train].mean())
        truth.append(y)
        p_up.append(p)
        base_label.append(np.full(len(y), int(rate >= 0.5)))
        base_p.append(np.full(len(y), rate))
        times.append(data.close_ms[test])
        fold_diffs.append(float(np.mean((p - y) ** 2) - np.mean((rate - y) ** 2)))
    y, p, bl, bp = (np.concatenate(a) for a in (truth, p_up, base_label, base_p))
    when = np.concatenate(times)
    diff = (p - y) ** 2 - (bp - y) ** 2
    per_time = [float(diff[when == t].mean()) for t in np.unique(when)]
    interval = newey_west_interval(per_time, h - 1)
    return StudyRow(
        name=feature_set.name,
        horizon=h,
        features=data.features.shape[1],
        rows=len(y),
        accuracy=float(((p >= 0.5).astype(int) == y).mean()),
        baseline_accuracy=float((bl == y).mean()),
        roc_auc=float(roc_auc_score(y, p)),
        brier=float(brier_score_loss(y, p)),
        baseline_brier=float(brier_score_loss(y, bp)),
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        baseline_log_loss=float(log_loss(y, bp, labels=[0, 1])),
        brier_difference=(interval.mean, interval.low, interval.high),
        fold_brier_differences=tuple(fold_diffs),
    )


def markdown_table(rows: Sequence[StudyRow]) -> str:
    lines = [
        "| feature set | horizon | features | scored rows | accuracy (baseline) | ROC AUC "
        "(baseline 0.5) | Brier (baseline) | log loss (baseline) | Brier - baseline, 95% CI "
        "| per fold | beats the baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mean, low, high = r.brier_difference
        folds = ", ".join(f"{d:+.4f}" for d in r.fold_brier_differences)
        lines.append(
            f"| {r.name} | {r.horizon} | {r.features} | {r.rows} | {r.accuracy:.4f} "
            f"({r.baseline_accuracy:.4f}) | {r.roc_auc:.4f} | {r.brier:.4f} "
            f"({r.baseline_brier:.4f}) | {r.log_loss:.4f} ({r.baseline_log_loss:.4f}) | "
            f"{mean:+.5f} [{low:+.5f}, {high:+.5f}] | {folds} | "
            f"{'yes' if r.beats_baseline else 'no'} |"
        )
    return "\n".join(lines)
