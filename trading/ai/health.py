"""ai's own checks: a trained model to predict with, and fresh bars to predict on."""

from __future__ import annotations

import time

from django.conf import settings

from trading.marketdata.prices import latest_quotes
from trading.models import ModelVersion
from trading.observability.health import Check, Status, service_check
from trading.store import redis_probe_client


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
    quotes = latest_quotes(list(settings.SYMBOLS), client=redis_probe_client())
    now = time.time()
    ages = {s: round(q.age(now), 1) for s, q in quotes.items()}
    missing = sorted(set(settings.SYMBOLS) - set(quotes))
    stale = sorted(s for s, age in ages.items() if age > settings.MARKET_DATA_MAX_AGE_SECONDS)
    if missing or stale:
        problems = [*(f"{s}: no bars" for s in missing), *(f"{s}: stale" for s in stale)]
        return Check("market_data", Status.FAIL, "; ".join(problems), {"age_seconds": ages})
    return Check("market_data", Status.PASS, observed={"age_seconds": ages})
