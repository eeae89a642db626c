"""The direction model: will the close be higher ``HORIZON_BARS`` bars from now?

The label of a bar is 1 when the forward log return over the horizon, ln(close_t+h / close_t), is
above zero and 0 otherwise (a flat close counts as "not up"). The model gives p_up, a calibrated
probability of that; a signal's side is BUY when p_up >= 0.5, and its confidence is
max(p_up, 1 - p_up), the calibrated probability that the side is right.

Why this estimator: a logistic regression on standardised features (StandardScaler then
LogisticRegression, one Pipeline), wrapped in CalibratedClassifierCV with sigmoid (Platt)
calibration.

- The signal in hour-ahead crypto direction is weak: on the bundled 30 days nothing tried beats
  the no-skill baseline out of sample. A linear model has a dozen coefficients, so it has little
  room to fit that noise. HistGradientBoostingClassifier (default, and shallow with a low learning
  rate) scored no better within the noise (walk-forward ROC AUC 0.503-0.508 against 0.502, Brier
  0.2498-0.2499 against 0.2501) and took about 20 times as long to train; a model whose extra
  capacity buys nothing measurable is only extra risk. ``trading/ai/training.py`` has the figures.
- It is fast to fit (walk-forward scoring and the final fit on 3 symbols x 30 days take under a
  second on two cores) and to use (features and prediction for one bar take about 2 ms, far
  inside the 1000 ms signal budget).
- Its features are scale-free (returns, ratios to the price, z-scores), so one model serves every
  symbol, including one added by configuration later; the scaler only evens out their units.
- Sigmoid calibration rather than isotonic: with probabilities that stay close to 0.5, isotonic
  regression's step function overfits the calibration folds, while Platt scaling fits two numbers.
  The calibration folds are time-ordered (earlier rows fit, later rows calibrate, with a gap of the
  horizon between them), so the calibration is judged on the future as it will be used.

Artifacts are joblib files: pickles. Load only artifacts this platform wrote into its own model
directory; a pickle from elsewhere can run arbitrary code.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import sklearn
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

logger = logging.getLogger(__name__)

HORIZON_BARS = 12  # 1 hour of 5-minute bars
CALIBRATION_METHOD = "sigmoid"
CALIBRATION_FOLDS = 3
# What defines the estimator; part of the version hash, so changing any of it makes a new version.
ESTIMATOR_PARAMS: dict[str, Any] = {
    "estimator": "StandardScaler+LogisticRegression",
    "C": 0.1,
    "max_iter": 1000,
    "calibration": CALIBRATION_METHOD,
    "calibration_folds": CALIBRATION_FOLDS,
}
PSI_BINS = 10  # quantile bins of each feature kept for the population stability index
ARTIFACT_SUFFIX = ".joblib"
SIDECAR_SUFFIX = ".json"
FORMAT = 1  # of the saved artifact; bump when its metadata changes shape

Side = Literal["BUY", "SELL"]


def direction_labels(close: np.ndarray, horizon: int = HORIZON_BARS) -> np.ndarray:
    """1.0 where ln(close[t + horizon] / close[t]) > 0, else 0.0; NaN for the last ``horizon`` rows,
    whose future is not known yet."""
    if horizon < 1:
        raise ValueError(f"horizon must be at least one bar, got {horizon}")
    close = np.asarray(close, dtype=float)
    labels = np.full(len(close), np.nan)
    if len(close) > horizon:
        labels[:-horizon] = (close[horizon:] > close[:-horizon]).astype(float)
    return labels


def build_estimator(calibration_cv: Any) -> CalibratedClassifierCV:
    """An unfitted model as ESTIMATOR_PARAMS describes it, calibrated on the (fit rows, calibration
    rows) splits that the scikit-learn splitter ``calibration_cv`` makes of the rows it is fitted
    on; its prediction averages the calibrated model of every split."""
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "classify",
                LogisticRegression(C=ESTIMATOR_PARAMS["C"], max_iter=ESTIMATOR_PARAMS["max_iter"]),
            ),
        ]
    )
    return CalibratedClassifierCV(
        pipeline, method=CALIBRATION_METHOD, cv=calibration_cv, ensemble=True
    )


# -- the artifact ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureStats:
    """A feature's distribution over the training rows: the reference for drift checks.

    ``bin_edges`` are the distinct inner quantile edges (PSI_BINS - 1 of them, fewer where many
    values are equal) of bins that run from -inf to +inf; ``bin_fractions`` the share of training
    rows in each bin (about 1/PSI_BINS each). Bin i holds edges[i-1] <= v < edges[i], the
    convention of ``trading.analytics.drift``, which bins live values against these.
    """

    mean: float
    std: float
    bin_edges: tuple[float, ...]
    bin_fractions: tuple[float, ...]

    @classmethod
    def of(cls, values: np.ndarray, bins: int = PSI_BINS) -> FeatureStats:
        values = np.asarray(values, dtype=float)
        edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
        return cls(
            mean=float(values.mean()),
            std=float(values.std()),
            bin_edges=tuple(float(edge) for edge in edges),
            bin_fractions=tuple(float(share) for share in bin_fractions(values, edges)),
        )


def bin_fractions(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """The share of ``values`` in each of the len(edges) + 1 bins FeatureStats describes."""
    counts = np.bincount(
        np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(edges) + 1
    )
    return counts / max(len(values), 1)


@dataclass(frozen=True)
class Scores:
    """Out-of-sample scores: every row was predicted by a model that never saw it or its future.

    ``base_rate`` is the share of up-labels among the scored rows. ``baseline_accuracy`` is the
    no-skill figure to beat: each fold predicts the majority label of its own training rows for
    all its test rows. ``baseline_brier`` likewise predicts the training base rate as p_up.
    """

    accuracy: float
    roc_auc: float
    brier: float
    n_test: int
    base_rate: float
    baseline_accuracy: float
    baseline_brier: float


@dataclass(frozen=True)
class FoldReport:
    """One walk-forward fold: trained on bars closing in [train_start, train_end], tested on bars
    closing in [test_start, test_end], with at least the horizon between the two."""

    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    n_train: int
    n_test: int
    accuracy: float
    baseline_accuracy: float


@dataclass(frozen=True)
class ModelArtifact:
    """A trained model and what an operator and the drift check need to know about it."""

    version: str
    trained_at: datetime
    symbols: tuple[str, ...]
    interval: str
    window_start: datetime  # close time of the first bar the training read
    window_end: datetime  # close time of the last bar the training read
    horizon_bars: int
    feature_names: tuple[str, ...]
    feature_stats: dict[str, FeatureStats]
    scores: Scores
    folds: tuple[FoldReport, ...]
    n_train: int  # labelled rows the final estimator was fitted on
    params: dict[str, Any]
    sklearn_version: str
    estimator: Any = dataclasses.field(repr=False, compare=False)

    def age_seconds(self, now: datetime) -> float:
        return (now - self.trained_at).total_seconds()

    @functools.cached_property
    def linear_form(self) -> LinearForm | None:
        """The estimator's arithmetic without its checks (``LinearForm``), worked out once per
        loaded artifact; None when the estimator is not of that form."""
        return LinearForm.of(self.estimator, len(self.feature_names))

    def metadata(self) -> dict[str, Any]:
        """Everything but the estimator, JSON-safe: times in ISO 8601, tuples as lists."""
        data = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name != "estimator"
        }
        return {"format": FORMAT, **_jsonable(data)}

    @classmethod
    def from_metadata(cls, data: Mapping[str, Any], estimator: Any) -> ModelArtifact:
        if data.get("format") != FORMAT:
            raise ValueError(f"model artifact format {data.get('format')!r}, expected {FORMAT}")
        when = datetime.fromisoformat
        return cls(
            version=data["version"],
            trained_at=when(data["trained_at"]),
            symbols=tuple(data["symbols"]),
            interval=data["interval"],
            window_start=when(data["window_start"]),
            window_end=when(data["window_end"]),
            horizon_bars=int(data["horizon_bars"]),
            feature_names=tuple(data["feature_names"]),
            feature_stats={
                name: FeatureStats(
                    mean=stats["mean"],
                    std=stats["std"],
                    bin_edges=tuple(stats["bin_edges"]),
                    bin_fractions=tuple(stats["bin_fractions"]),
                )
                for name, stats in data["feature_stats"].items()
            },
            scores=Scores(**data["scores"]),
            folds=tuple(
                FoldReport(
                    **{
                        **fold,
                        **{
                            key: when(fold[key])
                            for key in ("train_start", "train_end", "test_start", "test_end")
                        },
                    }
                )
                for fold in data["folds"]
            ),
            n_train=int(data["n_train"]),
            params=dict(data["params"]),
            sklearn_version=data["sklearn_version"],
            estimator=estimator,
        )


def model_version(
    *,
    symbols: Sequence[str],
    interval: str,
    window_start: datetime,
    window_end: datetime,
    horizon_bars: int,
    params: Mapping[str, Any],
    data_digest: str,
) -> str:
    """ "m-<window end, UTC>-<8 hex digits>": the same training window, data and parameters always
    give the same version, and versions sort by the recency of the data they learnt from."""
    identity = json.dumps(
        {
            "symbols": list(symbols),
            "interval": interval,
            "window_start": window_start.astimezone(UTC).isoformat(),
            "window_end": window_end.astimezone(UTC).isoformat(),
            "horizon_bars": horizon_bars,
            "params": dict(params),
            "data": data_digest,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return f"m-{window_end.astimezone(UTC):%Y%m%dT%H%M%SZ}-{digest}"


def save_artifact(artifact: ModelArtifact, directory: Path | str) -> Path:
    """Writes ``<version>.joblib`` (metadata and estimator) and ``<version>.json`` (the metadata,
    for people and for tools that must not unpickle) into ``directory``; returns the joblib path.

    Both files are written under temporary names and renamed, so a reader never sees half a file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metadata = artifact.metadata()
    path = directory / f"{artifact.version}{ARTIFACT_SUFFIX}"
    sidecar = path.with_suffix(SIDECAR_SUFFIX)
    partial = path.with_name(path.name + ".partial")
    joblib.dump({"metadata": metadata, "estimator": artifact.estimator}, partial)
    partial.replace(path)
    partial_sidecar = sidecar.with_name(sidecar.name + ".partial")
    partial_sidecar.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    partial_sidecar.replace(sidecar)
    return path


def load_artifact(path: Path | str) -> ModelArtifact:
    """The artifact saved at ``path`` (the .joblib file, or its .json sidecar's name).

    Raises FileNotFoundError when it is missing and ValueError when it is not an artifact of this
    format. Logs a warning when it was written by another scikit-learn version.
    """
    path = Path(path).with_suffix(ARTIFACT_SUFFIX)
    payload = joblib.load(path)
    if not isinstance(payload, dict) or {"metadata", "estimator"} - payload.keys():
        raise ValueError(f"{path} is not a model artifact")
    artifact = ModelArtifact.from_metadata(payload["metadata"], payload["estimator"])
    if artifact.sklearn_version != sklearn.__version__:
        logger.warning(
            "model %s was trained with scikit-learn %s, running %s",
            artifact.version,
            artifact.sklearn_version,
            sklearn.__version__,
        )
    return artifact


def latest_artifact(directory: Path | str) -> ModelArtifact | None:
    """The most recently trained artifact in ``directory`` (by its ``trained_at``), or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    newest: tuple[datetime, str, Path] | None = None
    for sidecar in directory.glob(f"*{SIDECAR_SUFFIX}"):
        artifact_path = sidecar.with_suffix(ARTIFACT_SUFFIX)
        if not artifact_path.exists():
            continue
        try:
            metadata = json.loads(sidecar.read_text())
            trained_at = datetime.fromisoformat(metadata["trained_at"])
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("skipping unreadable model sidecar %s", sidecar)
            continue
        key = (trained_at, metadata.get("version", ""), artifact_path)
        if newest is None or key[:2] > newest[:2]:
            newest = key
    return None if newest is None else load_artifact(newest[2])


# -- inference -------------------------------------------------------------------------------------


def predict(artifact: ModelArtifact, features_row: np.ndarray) -> tuple[Side, float, float]:
    """(side, confidence, p_up) for one feature row, as ``latest_features()`` gives it.

    p_up is the calibrated probability that the close rises over the artifact's horizon; side is
    BUY when p_up >= 0.5, else SELL; confidence = max(p_up, 1 - p_up), in [0.5, 1]. Raises
    ValueError for a row of the wrong length or with a NaN (too little history).
    """
    row = np.asarray(features_row, dtype=float).reshape(1, -1)
    if row.shape[1] != len(artifact.feature_names):
        raise ValueError(
            f"model {artifact.version} takes {len(artifact.feature_names)} features, "
            f"got {row.shape[1]}"
        )
    if not np.isfinite(row).all():
        missing = [n for n, v in zip(artifact.feature_names, row[0], strict=True) if np.isnan(v)]
        raise ValueError(f"features not defined (too little history?): {', '.join(missing)}")
    form = artifact.linear_form
    if form is not None:
        return _decision(float(form.up_probability(row)[0]))
    p_up = float(artifact.estimator.predict_proba(row)[0, _up_column(artifact.estimator)])
    return _decision(p_up)


def predict_rows(artifact: ModelArtifact, rows: np.ndarray) -> list[tuple[Side, float, float]]:
    """``predict()`` of each row of a feature matrix, in one call of the estimator (a backtest's
    whole series); the same ValueErrors for rows of the wrong length or with a NaN."""
    rows = np.asarray(rows, dtype=float).reshape(-1, len(artifact.feature_names))
    if not np.isfinite(rows).all():
        raise ValueError("features not defined in some rows (too little history?)")
    if not len(rows):
        return []
    return [_decision(float(p)) for p in predict_up_probability(artifact.estimator, rows)]


def _decision(p_up: float) -> tuple[Side, float, float]:
    side: Side = "BUY" if p_up >= 0.5 else "SELL"
    return side, max(p_up, 1.0 - p_up), p_up


def predict_up_probability(estimator: Any, features: np.ndarray) -> np.ndarray:
    """p_up for each row of a feature matrix."""
    return estimator.predict_proba(features)[:, _up_column(estimator)]


def _up_column(estimator: Any) -> int:
    return int(np.flatnonzero(estimator.classes_ == 1)[0])


@dataclass(frozen=True)
class _Member:
    """One calibrated pipeline of the ensemble: scaler, logistic regression, Platt sigmoid."""

    mean: np.ndarray
    scale: np.ndarray
    coef_t: np.ndarray
    intercept: np.ndarray
    a: Any
    b: Any


class LinearForm:
    """p_up of a fitted ``build_estimator()`` model, computed with the very numpy operations its
    ``predict_proba`` performs, in the same order and on arrays of the same shapes and layouts,
    so the result is the same to the last bit; only scikit-learn's checks of the input and of
    the fitted state are left out. On one row those checks cost about fifty times the
    arithmetic, and the live signal predicts one row per bar, twice with a challenger on trial.

    ``of()`` gives one only for an estimator of exactly that shape whose own ``predict_proba``
    it matches on probe rows, so a scikit-learn that computes differently falls back to it."""

    def __init__(self, members: tuple[_Member, ...]) -> None:
        self.members = members

    @classmethod
    def of(cls, estimator: Any, n_features: int) -> LinearForm | None:
        members = _linear_members(estimator)
        if not members or any(m.coef_t.shape != (n_features, 1) for m in members):
            return None
        form = cls(members)
        probe = _probe_rows(members[0])
        expected = predict_up_probability(estimator, probe)
        if not np.array_equal(form.up_probability(probe), expected):
            logger.warning("the linear form differs from predict_proba here: predicting with that")
            return None
        return form

    def up_probability(self, rows: np.ndarray) -> np.ndarray:
        """p_up of each row of a finite float64 feature matrix."""
        # CalibratedClassifierCV.predict_proba: the mean of each member's calibrated
        # probability, summed from zeros in member order, then divided by their count.
        total = np.zeros(len(rows))
        for member in self.members:
            # StandardScaler.transform on a copy, then LogisticRegression.decision_function.
            scaled = np.array(rows, dtype=float)
            scaled -= member.mean
            scaled /= member.scale
            decision = (scaled @ member.coef_t + member.intercept).reshape(-1)
            # _SigmoidCalibration.predict.
            total += expit(-(member.a * decision + member.b))
        total /= len(self.members)
        return total


def _linear_members(estimator: Any) -> tuple[_Member, ...] | None:
    """The fitted parts of a sigmoid-calibrated ensemble of scaler + logistic regression
    pipelines on labels 0 and 1, or None for any other estimator."""
    if (
        not isinstance(estimator, CalibratedClassifierCV)
        or estimator.method != "sigmoid"
        or not hasattr(estimator, "calibrated_classifiers_")
        or not _binary(estimator.classes_)
    ):
        return None
    members = []
    for calibrated in estimator.calibrated_classifiers_:
        pipeline = calibrated.estimator
        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            return None
        scaler, classifier = (step for _, step in pipeline.steps)
        calibrators = list(calibrated.calibrators)
        if (
            type(scaler) is not StandardScaler
            or not (scaler.with_mean and scaler.with_std)
            or type(classifier) is not LogisticRegression
            or classifier.coef_.ndim != 2
            or classifier.coef_.shape[0] != 1
            or not _binary(classifier.classes_)
            or not _binary(calibrated.classes)
            or len(calibrators) != 1
            or type(calibrators[0]).__name__ != "_SigmoidCalibration"
        ):
            return None
        members.append(
            _Member(
                mean=scaler.mean_.astype(float),
                scale=scaler.scale_.astype(float),
                coef_t=classifier.coef_.T,
                intercept=classifier.intercept_,
                a=calibrators[0].a_,
                b=calibrators[0].b_,
            )
        )
    return tuple(members)


def _binary(classes: Any) -> bool:
    return np.array_equal(np.asarray(classes), [0, 1])


def _probe_rows(member: _Member) -> np.ndarray:
    """Rows around the training distribution the scaler saw: its mean, a few standard
    deviations either side in a mix of directions, and zeros."""
    steps = np.array([0.0, 1.0, -1.0, 2.5, -3.0, 0.5])
    signs = np.where(np.arange(len(member.mean)) % 2 == 0, 1.0, -1.0)
    rows = [member.mean + step * signs * member.scale for step in steps]
    return np.vstack([*rows, np.zeros_like(member.mean)])


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
