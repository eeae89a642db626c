"""The ai service: models trained on bars, kept in the database, and a signal on every bar."""

from __future__ import annotations

import functools
import logging
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from trading.ai import metrics
from trading.ai.features import FEATURE_NAMES, WARMUP_BARS, latest_features
from trading.ai.model import ModelArtifact, load_artifact, predict, save_artifact
from trading.ai.training import train_walk_forward
from trading.events.envelope import Event, new_event
from trading.events.log import publish
from trading.marketdata.bars import Bar
from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.prices import recent_bars
from trading.models import ModelVersion, Signal

logger = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


# --- models -----------------------------------------------------------------------------------


def training_bars(days: float | None = None) -> dict[str, list[Bar]]:
    """The bundled history of every configured symbol, the last ``days`` of it when given."""
    days = settings.TRAIN_DAYS if days is None else days
    bars = {}
    for symbol in settings.SYMBOLS:
        series = load_bundled_bars(symbol)
        keep = int(days * 288) if days else len(series)
        bars[symbol] = series[-keep:]
    return bars


def train_model(*, trigger: str = "manual", days: float | None = None,
                progress: Progress | None = None) -> ModelVersion:  # fmt: skip
    """Trains on the bundled history, stores the model as the newest version, announces it."""
    artifact = train_walk_forward(training_bars(days), progress=progress)
    model = store_model(artifact, trigger)
    metrics.TRAININGS.inc(trigger=trigger)
    return model


def store_model(artifact: ModelArtifact, trigger: str) -> ModelVersion:
    with tempfile.TemporaryDirectory() as directory:
        blob = save_artifact(artifact, directory).read_bytes()
    scores = artifact.scores
    with transaction.atomic():
        model, _ = ModelVersion.objects.update_or_create(
            version=artifact.version,
            defaults={
                "trained_at": artifact.trained_at,
                "window_start": artifact.window_start,
                "window_end": artifact.window_end,
                "symbols": ",".join(artifact.symbols),
                "horizon_bars": artifact.horizon_bars,
                "accuracy": scores.accuracy,
                "baseline_accuracy": scores.baseline_accuracy,
                "roc_auc": scores.roc_auc,
                "brier": scores.brier,
                "trigger": trigger,
                "metadata": artifact.metadata(),
                "artifact": blob,
            },
        )
        payload = {
            "version": model.version,
            "trigger": trigger,
            "accuracy": scores.accuracy,
            "baseline_accuracy": scores.baseline_accuracy,
            "roc_auc": scores.roc_auc,
            "brier": scores.brier,
        }
        event = new_event("model.trained", payload, service="ai")
        transaction.on_commit(lambda: publish(event))
    return model


@functools.lru_cache(maxsize=2)
def _load(version: str) -> ModelArtifact:
    blob = bytes(ModelVersion.objects.values_list("artifact", flat=True).get(version=version))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"{version}.joblib"
        path.write_bytes(blob)
        return load_artifact(path)


_current: dict[str, object] = {"version": None, "checked": 0.0}
RECHECK_SECONDS = 10.0


def current_model() -> ModelArtifact | None:
    """The newest model, loaded once per process and swapped when a newer one is stored."""
    if time.monotonic() - float(_current["checked"]) > RECHECK_SECONDS or not _current["version"]:
        _current["version"] = (
            ModelVersion.objects.values_list("version", flat=True).order_by("-trained_at").first()
        )
        _current["checked"] = time.monotonic()
    version = _current["version"]
    return None if version is None else _load(str(version))


# --- signals ----------------------------------------------------------------------------------


def generate_signal(event: Event) -> Signal | None:
    """A closed bar in, a signal for exec-risk out (or None while the history is too short)."""
    from trading.execution.services import create_signal
    from trading.execution.tasks import process_signal
    from trading.risk.services import get_account

    bar = Bar.from_payload(event.payload)
    model = current_model()
    if model is None:
        metrics.ERRORS.inc(kind="no_model")
        return None
    bars = recent_bars(bar.symbol, WARMUP_BARS + 1)
    if len(bars) < WARMUP_BARS or bars[-1].close_time != bar.close_time:
        return None  # still warming up, or an older bar arriving late
    row = latest_features(bars)
    if not np.all(np.isfinite(row)):
        metrics.ERRORS.inc(kind="features")
        return None
    side, confidence, p_up = predict(model, row)
    metrics.PREDICTIONS.inc()
    multiplier = sizing_multiplier(bar.symbol)
    signal = create_signal(
        get_account(),
        symbol=bar.symbol,
        side=side,
        confidence=Decimal(str(round(confidence, 6))),
        notional=settings.AI_ORDER_NOTIONAL * multiplier,
        source="ai",
        model_version=model.version,
        probability_up=float(p_up),
        features={name: float(value) for name, value in zip(FEATURE_NAMES, row, strict=True)},
    )
    transaction.on_commit(lambda: process_signal.delay(str(signal.id)))
    metrics.SIGNALS_GENERATED.inc(side=side)
    metrics.SIGNAL_LATENCY.observe(max(0.0, time.time() - event.ts.timestamp()))
    if multiplier > 1:
        from trading.analytics.metrics import AMPLIFICATIONS

        AMPLIFICATIONS.inc()
    return signal


def sizing_multiplier(symbol: str) -> Decimal:
    """The analytics service's size multiplier for the symbol (1 when it has none)."""
    from trading.store import redis_client, rkey

    raw = redis_client().hget(rkey("sizing"), symbol)
    return Decimal(raw) if raw else Decimal("1")
