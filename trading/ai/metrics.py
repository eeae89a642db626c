"""ai's metrics, named by the original spec."""

from __future__ import annotations

import time
from enum import StrEnum

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

from trading.models import Side
from trading.observability.metrics import Kind, declare, scrape_collector

S = "ai"


class NoSignal(StrEnum):
    """Why a closed bar got no signal (the ai service's errors)."""

    NO_MODEL = "no_model"  # no trained model yet
    HISTORY_BAR = "history_bar"  # announced as history (a feed's backfill), not as it closed
    STALE_BAR = "stale_bar"  # handled after the model's horizon had passed
    FEATURES = "features"  # the features came out non-finite


class TrainingTrigger(StrEnum):
    """Why a model was trained. Other triggers (benchmarks) are counted too, not shown at 0."""

    MANUAL = "manual"  # the train_model command
    SCHEDULE = "schedule"  # the beat schedule
    DRIFT = "drift"  # analytics found the live features drifted
    REPLAY = "replay"  # a replay started over and no model had learnt from its seed alone


SIGNALS_GENERATED = declare(
    S,
    "ai_service_signals_generated_total",
    Kind.COUNTER,
    "Signals sent to exec-risk",
    {"side": Side},
)
PREDICTIONS = declare(
    S, "ai_service_predictions_made_total", Kind.COUNTER, "Predictions made on closed bars"
)
ERRORS = declare(
    S,
    "ai_service_errors_total",
    Kind.COUNTER,
    "Bars the ai service could not act on",
    {"kind": NoSignal},
)
SIGNAL_LATENCY = declare(
    S,
    "ai_service_signal_latency_seconds",
    Kind.HISTOGRAM,
    "From a bar's publication to the signal it produced being published",
    (),
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
TRAININGS = declare(
    S, "ai_service_trainings_total", Kind.COUNTER, "Models trained", {"trigger": TrainingTrigger}
)


def _loaded(value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "ai_service_model_loaded", "1 when a trained model is available", value=value
    )


@scrape_collector(S)
def model_gauges():
    """The model in use: its version (an info metric), age and out-of-sample accuracy."""
    from trading.models import ModelVersion

    model = ModelVersion.objects.serving().defer("artifact", "metadata").first()
    if model is None:
        return [_loaded(0)]
    info = InfoMetricFamily("ai_service_model", "The model in use")
    info.add_metric(
        [],
        {
            "version": model.version,
            "trigger": model.trigger,
            "train_start": model.window_start.isoformat(),
            "train_end": model.window_end.isoformat(),
        },
    )
    return [
        _loaded(1),
        info,
        GaugeMetricFamily(
            "ai_service_model_age_seconds",
            "Seconds since the model was trained",
            value=time.time() - model.trained_at.timestamp(),
        ),
        GaugeMetricFamily(
            "ai_service_model_oos_accuracy",
            "Out-of-sample accuracy of the model in use",
            value=model.accuracy,
        ),
    ]


def version_roles() -> dict[str, str]:
    """Each stored version's role: champion (serves), challenger (on trial), previous (served
    before: a rollback target), rejected (kept out or rolled back) or retired."""
    from trading.models import ModelVersion

    champion = ModelVersion.objects.serving().values_list("version", flat=True).first()
    challenger = ModelVersion.objects.challengers().values_list("version", flat=True).first()
    roles = {}
    for model in ModelVersion.objects.only("version", "promoted_at", "rejected_at", "retired_at"):
        roles[model.version] = {"promoted": "previous"}.get(model.status, model.status)
    if champion:
        roles[champion] = "champion"
    if challenger:
        roles[challenger] = "challenger"
    return roles


@scrape_collector(S)
def live_gauges():
    """Each model version's signals judged at their horizon (``trading.ai.live``): read from the
    database at scrape time, so every ai process agrees."""
    from trading.ai.live import recent_live_figures
    from trading.ai.scoring import bucket_label

    version = ["model_version", "role"]
    bucket = ["model_version", "role", "bucket"]
    scored = CounterMetricFamily(
        "ai_service_live_scored_signals",
        "Signals judged at their horizon against the bars that followed",
        labels=version,
    )
    pending = GaugeMetricFamily(
        "ai_service_live_pending_signals", "Signals waiting for their horizon", labels=version
    )
    hit_rate = GaugeMetricFamily(
        "ai_service_live_hit_rate", "Share of judged signals whose side was right", labels=version
    )
    brier = GaugeMetricFamily(
        "ai_service_live_brier_score", "Mean Brier score of p_up on judged signals", labels=version
    )
    log_loss = GaugeMetricFamily(
        "ai_service_live_log_loss", "Mean log loss of p_up on judged signals", labels=version
    )
    forward = GaugeMetricFamily(
        "ai_service_live_forward_return",
        "Mean net forward return over the horizon, after paper fees and slippage",
        labels=version,
    )
    confidence = GaugeMetricFamily(
        "ai_service_reliability_mean_confidence",
        "Mean stated confidence of the judged signals in a confidence bucket",
        labels=bucket,
    )
    observed = GaugeMetricFamily(
        "ai_service_reliability_observed_rate",
        "Observed hit rate of the judged signals in a confidence bucket",
        labels=bucket,
    )
    counts = GaugeMetricFamily(
        "ai_service_reliability_signals",
        "Judged signals in a confidence bucket",
        labels=bucket,
    )
    by_bucket = GaugeMetricFamily(
        "ai_service_forward_return_by_confidence",
        "Mean net forward return of the judged signals in a confidence bucket",
        labels=bucket,
    )
    roles = version_roles()
    for name, figures in recent_live_figures().items():
        labels = [name, roles.get(name, "unknown")]
        scored.add_metric(labels, figures.scored)
        pending.add_metric(labels, figures.pending)
        for family, value in (
            (hit_rate, figures.hit_rate),
            (brier, figures.brier),
            (log_loss, figures.log_loss),
            (forward, figures.mean_forward_return),
        ):
            if value is not None:
                family.add_metric(labels, value)
        for point in figures.buckets:
            at = [*labels, bucket_label(point.bucket)]
            confidence.add_metric(at, point.mean_confidence)
            observed.add_metric(at, point.observed_rate)
            counts.add_metric(at, point.count)
            by_bucket.add_metric(at, point.mean_forward_return)
    return [scored, pending, hit_rate, brier, log_loss, forward, confidence, observed, counts,
            by_bucket]  # fmt: skip
