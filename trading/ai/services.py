"""The ai service: models trained on bars, kept in the database, and a signal on every bar."""

from __future__ import annotations

import functools
import logging
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from trading.ai import champion as champions
from trading.ai import metrics
from trading.ai.features import FEATURE_NAMES, WARMUP_BARS, latest_features
from trading.ai.live import Prediction, open_scores, own_prediction
from trading.ai.model import ModelArtifact, load_artifact, predict, save_artifact
from trading.ai.training import train_walk_forward
from trading.ai.trainlog import record_training
from trading.events import outbox
from trading.events.envelope import Event, new_event
from trading.marketdata.bars import Bar
from trading.marketdata.barstore import (
    latest_stored_close,
    received_bars_after,
    seed_bar_store,
    training_window,
)
from trading.marketdata.prices import latest_quote, recent_bars
from trading.models import ModelVersion, Signal
from trading.store import redis_client, rkey
from trading.strategies import services as strategies

logger = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


# --- models -----------------------------------------------------------------------------------


class NothingNewToLearn(Exception):
    """A retraining found no bar received since the serving version's window ended."""


def training_bars(days: float | None = None, end: datetime | None = None) -> dict[str, list[Bar]]:
    """Every configured symbol's stored bars of the ``days`` (default ``TRAIN_DAYS``) up to
    ``end`` (default: the latest stored bar, the latest the platform has seen). The bar store is
    seeded from the bundled history first if it is empty."""
    days = settings.TRAIN_DAYS if days is None else days
    seed_bar_store(settings.SYMBOLS)
    end = end or latest_stored_close(settings.SYMBOLS)
    if end is None:
        raise ValueError(f"no stored bars of {', '.join(settings.SYMBOLS)} to train on")
    return training_window(settings.SYMBOLS, days, end)


def train_model(*, trigger: str = "manual", days: float | None = None,
                progress: Progress | None = None) -> ModelVersion:  # fmt: skip
    """Trains walk-forward on the bar store's window ending at the latest stored bar, stores the
    model as the newest version, announces it.

    Raises NothingNewToLearn (and makes no version) when the platform received no bar since the
    newest version's window ended: the same window would teach it nothing new. The new version
    is a challenger (``trading.ai.champion``) unless none serves."""
    seed_bar_store(settings.SYMBOLS)
    # The newest window of any version not retired: the champion's, or a challenger's on trial
    # or kept out, which the same bars would only make again.
    newest = (
        ModelVersion.objects.filter(retired_at__isnull=True)
        .defer("artifact", "metadata")
        .order_by("-window_end")
        .first()
    )
    if newest is not None and not received_bars_after(settings.SYMBOLS, newest.window_end):
        detail = (
            f"no new bars since {newest.window_end.isoformat()}, the end of the window of "
            f"{newest.version}: no new version"
        )
        logger.info("retraining (%s): %s", trigger, detail)
        record_training(trigger, None, detail)
        raise NothingNewToLearn(detail)
    artifact = train_walk_forward(training_bars(days), progress=progress)
    model = store_model(artifact, trigger)
    metrics.TRAININGS.inc(trigger=trigger)
    record_training(
        trigger,
        model.version,
        f"trained on {artifact.window_start.isoformat()} to {artifact.window_end.isoformat()}",
    )
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
        # A new version is a challenger; only a platform's first serves at once.
        payload["role"] = champions.settle_new_version(model)
        outbox.record([new_event("model.trained", payload, service="ai")])
    return model


@functools.lru_cache(maxsize=4)
def _load(version: str) -> ModelArtifact:
    blob = bytes(ModelVersion.objects.values_list("artifact", flat=True).get(version=version))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"{version}.joblib"
        path.write_bytes(blob)
        return load_artifact(path)


_current: dict[str, object] = {"version": None, "checked": 0.0}
_challenger: dict[str, object] = {"version": None, "checked": 0.0}
RECHECK_SECONDS = 10.0


def current_model() -> ModelArtifact | None:
    """The serving model (the champion, ``trading.ai.champion``), loaded once per process and
    swapped within ``RECHECK_SECONDS`` when another one serves."""
    if time.monotonic() - float(_current["checked"]) > RECHECK_SECONDS or not _current["version"]:
        _current["version"] = (
            ModelVersion.objects.serving().values_list("version", flat=True).first()
        )
        _current["checked"] = time.monotonic()
    version = _current["version"]
    return None if version is None else _load(str(version))


def challenger_model() -> ModelArtifact | None:
    """The version on trial, if any, rechecked like ``current_model``."""
    if time.monotonic() - float(_challenger["checked"]) > RECHECK_SECONDS:
        _challenger["version"] = (
            ModelVersion.objects.challengers().values_list("version", flat=True).first()
        )
        _challenger["checked"] = time.monotonic()
    version = _challenger["version"]
    return None if version is None else _load(str(version))


def forget_current_models() -> None:
    """The next bar looks the champion and the challenger up again (after a decision)."""
    _current["checked"] = _challenger["checked"] = 0.0


# --- signals ----------------------------------------------------------------------------------


def generate_signal(event: Event) -> Signal | None:
    """A closed bar in, a signal for exec-risk out; None while the history is too short, or for
    a bar handled late that ``late_bar_skip`` turns away.

    Each bar gets its signal from its own window of history, also when later bars came in before
    it was handled (the backlog of a worker that was down, a drain slower than the feed)."""
    from trading.execution.intake import SignalRequest, submit_signal
    from trading.risk.services import get_account

    bar = Bar.from_payload(event.payload)
    account = get_account()
    configs = strategies.enabled_configs(account)
    rules = strategies.rule_strategies(configs)
    if rules:
        window = history_ending_at(bar, strategies.window_size(rules))[0]
        strategies.signals_on_bar(account, window, rules)
    if not strategies.runs_ai_model(configs):
        return None
    model = current_model()
    if model is None:
        metrics.ERRORS.inc(kind=metrics.NoSignal.NO_MODEL)
        return None
    bars, newer = history_ending_at(bar)
    if len(bars) < WARMUP_BARS:
        return None  # still warming up, or the bar is older than the history kept
    if newer:
        newest = latest_quote(bar.symbol)
        skip = late_bar_skip(
            newer,
            model.horizon_bars,
            announced_at=event.ts.timestamp(),
            newest_received_at=newest.received_at if newest else 0.0,
        )
        if skip is not None:
            metrics.ERRORS.inc(kind=skip)
            return None
    row = latest_features(bars)
    if not np.all(np.isfinite(row)):
        metrics.ERRORS.inc(kind=metrics.NoSignal.FEATURES)
        return None
    side, confidence, p_up = predict(model, row)
    multiplier = sizing_multiplier(bar.symbol)
    request = SignalRequest(
        symbol=bar.symbol,
        side=side,
        confidence=Decimal(str(round(confidence, 6))),
        notional=settings.AI_ORDER_NOTIONAL * multiplier,
    )
    signal = submit_signal(
        account,
        request,
        producer="ai",
        source="ai",
        model_version=model.version,
        probability_up=float(p_up),
        features={name: float(value) for name, value in zip(FEATURE_NAMES, row, strict=True)},
    )
    # After the signal, and cheap, since the batch's next bars wait for it: the challenger's
    # prediction and the score rows (one statement for both). The counters wait for the commit.
    predictions = [own_prediction(signal, model.horizon_bars)]
    shadow = shadow_prediction(row, model)
    if shadow is not None:
        predictions.append(shadow)
    open_scores(signal, bar, predictions)
    latency = max(0.0, time.time() - event.ts.timestamp())
    transaction.on_commit(
        functools.partial(count_signal, side, latency, amplified=multiplier > 1), robust=True
    )
    return signal


def count_signal(side: str, latency: float, *, amplified: bool) -> None:
    """Counts a committed signal: its prediction, its side, the seconds from its bar's event to
    it and whether analytics enlarged it."""
    pipe = redis_client().pipeline(transaction=False)
    metrics.PREDICTIONS.inc(client=pipe)
    metrics.SIGNALS_GENERATED.inc(side=side, client=pipe)
    if amplified:
        from trading.analytics.metrics import AMPLIFICATIONS

        AMPLIFICATIONS.inc(client=pipe)
    pipe.execute()
    metrics.SIGNAL_LATENCY.observe(latency)


def shadow_prediction(row: np.ndarray, serving: ModelArtifact) -> Prediction | None:
    """The challenger's prediction on the champion's features, to be stored as a second score
    row of the champion's signal: judged on the same bar at the same horizon, never sent
    anywhere. None when no challenger is on trial (or it takes other features)."""
    candidate = challenger_model()
    if candidate is None or candidate.version == serving.version:
        return None
    if candidate.feature_names != serving.feature_names:
        logger.warning("challenger %s takes other features: not scored", candidate.version)
        return None
    side, confidence, p_up = predict(candidate, row)
    return Prediction(
        version=candidate.version,
        horizon_bars=candidate.horizon_bars,
        side=side,
        p_up=float(p_up),
        confidence=float(confidence),
    )


def history_ending_at(bar: Bar, size: int = WARMUP_BARS) -> tuple[list[Bar], int]:
    """The symbol's recorded bars up to and including ``bar``, its last ``size``, oldest
    first (fewer while the history is short, none when ``bar`` is not in it: older than the
    history kept), and how many bars of the symbol closed after it."""
    bars = recent_bars(bar.symbol, size + 1)
    if bars and bars[-1].close_time > bar.close_time:
        bars = recent_bars(bar.symbol)  # later bars came in first: find this one further back
    window = window_ending_at(bars, bar.close_time, size)
    newer = len({b.close_time for b in bars if b.close_time > bar.close_time})
    return window, newer


def late_bar_skip(
    newer: int, horizon_bars: int, *, announced_at: float, newest_received_at: float
) -> metrics.NoSignal | None:
    """Why a bar handled after ``newer`` later bars of its symbol closed gets no signal, or None
    when it gets one. ``announced_at`` is when its ``market.bar`` event was published and
    ``newest_received_at`` when the newest bar was recorded (unix seconds, the feed's clock).

    "history_bar": the newest bar was in before this one was announced, so it was announced
    as history (a feed's backfill on start-up), not as it closed; only the newest of those
    trades. "stale_bar": ``horizon_bars`` bars or more closed since, so the horizon the model
    predicts over has passed and its prediction is about the past."""
    if newer <= 0:
        return None
    if newest_received_at <= announced_at:
        return metrics.NoSignal.HISTORY_BAR
    if newer >= horizon_bars:
        return metrics.NoSignal.STALE_BAR
    return None


def window_ending_at(bars: list[Bar], close_time: datetime, size: int) -> list[Bar]:
    """The last ``size`` bars closing at or before ``close_time``, one per close time, oldest
    first; empty when no bar closes at ``close_time``."""
    by_close = {b.close_time: b for b in bars if b.close_time <= close_time}
    if close_time not in by_close:
        return []
    return [by_close[t] for t in sorted(by_close)][-size:]


def sizing_multiplier(symbol: str) -> Decimal:
    """The analytics service's size multiplier for the symbol (1 when it has none)."""
    raw = redis_client().hget(rkey("sizing"), symbol)
    return Decimal(raw) if raw else Decimal("1")
