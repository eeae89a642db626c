"""ai's own checks: a trained model to predict with, and fresh bars to predict on."""

from __future__ import annotations

import time

from trading.marketdata.health import market_data_check
from trading.models import ModelVersion
from trading.observability.health import Check, Status, service_check


@service_check("ai")
def model() -> Check:
    latest = ModelVersion.objects.defer("artifact", "metadata").first()
    if latest is None:
        return Check("model", Status.FAIL, "no trained model: run manage.py train_model")
    age = time.time() - latest.trained_at.timestamp()
    return Check(
        "model",
        Status.PASS,
        observed={
            "version": latest.version,
            "age_seconds": round(age, 1),
            "oos_accuracy": round(latest.accuracy, 4),
            "baseline_accuracy": round(latest.baseline_accuracy, 4),
        },
    )


@service_check("ai")
def market_data() -> Check:
    # No fresh bars, no signals: ai is not ready without them.
    return market_data_check(critical=True)
