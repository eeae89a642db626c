"""ai's metrics, named by the original spec."""

from __future__ import annotations

import time
from enum import StrEnum

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

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

    model = ModelVersion.objects.defer("artifact", "metadata").first()
    if model is None:
        return [_loaded(0)]
    info = InfoMetricFamily("ai_service_model", "The model in use")
    info.add_metric([], {"version": model.version, "trigger": model.trigger})
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
