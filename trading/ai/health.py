"""ai's own checks: a trained model to predict with, and fresh bars to predict on."""

from __future__ import annotations

import time

from redis.exceptions import RedisError

from trading.ai.live import figures_json, recent_live_figures
from trading.ai.trainlog import last_training
from trading.marketdata.health import market_data_check
from trading.models import ModelVersion
from trading.observability.health import Check, Status, service_check

# The versions whose live figures the health page shows: the serving one and those before it.
LIVE_VERSIONS = 5


@service_check("ai")
def model() -> Check:
    versions = list(ModelVersion.objects.defer("artifact", "metadata")[:LIVE_VERSIONS])
    latest = next((v for v in versions if v.retired_at is None), None)
    if latest is None:
        latest = ModelVersion.objects.serving().defer("artifact", "metadata").first()
    if latest is None:
        return Check("model", Status.FAIL, "no trained model: run manage.py train_model")
    age = time.time() - latest.trained_at.timestamp()
    shown = [latest, *(v for v in versions if v.pk != latest.pk)]
    figures = recent_live_figures([v.version for v in shown])
    return Check(
        "model",
        Status.PASS,
        observed={
            "version": latest.version,
            "age_seconds": round(age, 1),
            "train_start": latest.window_start.isoformat(),
            "train_end": latest.window_end.isoformat(),
            # Out of sample: walk-forward over the training window, every row predicted by a
            # model that never saw it.
            "oos_accuracy": round(latest.accuracy, 4),
            "baseline_accuracy": round(latest.baseline_accuracy, 4),
            "oos_brier": round(latest.brier, 4),
            # Live: the signals made since, each judged at its horizon.
            "live": {
                v.version: {
                    "serving": v.pk == latest.pk,
                    "retired": v.retired_at is not None,
                    "train_start": v.window_start.isoformat(),
                    "train_end": v.window_end.isoformat(),
                    **figures_json(figures[v.version]),
                }
                for v in shown
            },
            "last_training": _last_training(),
        },
    )


def _last_training() -> dict | None:
    try:
        return last_training()
    except RedisError:
        return None


@service_check("ai")
def market_data() -> Check:
    # No fresh bars, no signals: ai is not ready without them.
    return market_data_check(critical=True)
