"""ai's own checks: a trained model to predict with, and fresh bars to predict on."""

from __future__ import annotations

import time

from redis.exceptions import RedisError

from trading.ai import champion as champions
from trading.ai.live import figures_json, recent_live_figures
from trading.ai.metrics import version_roles
from trading.ai.promotion import TEST_STATEMENT
from trading.ai.trainlog import last_training
from trading.marketdata.health import market_data_check
from trading.models import ModelDecision, ModelVersion
from trading.observability.health import Check, Status, service_check

# The versions whose live figures the health page shows: the serving one and those before it.
LIVE_VERSIONS = 5


@service_check("ai")
def model() -> Check:
    latest = champions.champion()
    if latest is None:
        return Check("model", Status.FAIL, "no trained model: run manage.py train_model")
    candidate = champions.challenger()
    versions = list(ModelVersion.objects.defer("artifact", "metadata")[:LIVE_VERSIONS])
    shown = [latest, *([candidate] if candidate else [])]
    shown += [v for v in versions if v.pk not in {s.pk for s in shown}]
    figures = recent_live_figures([v.version for v in shown])
    roles = version_roles()
    age = time.time() - latest.trained_at.timestamp()
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
            # Live: the signals made since, each judged at its horizon; a challenger's on the
            # same bars as the champion's.
            "live": {
                v.version: {
                    "serving": v.pk == latest.pk,
                    "role": roles.get(v.version),
                    "retired": v.retired_at is not None,
                    "train_start": v.window_start.isoformat(),
                    "train_end": v.window_end.isoformat(),
                    "oos_accuracy": round(v.accuracy, 4),
                    "oos_brier": round(v.brier, 4),
                    **figures_json(figures[v.version]),
                }
                for v in shown
            },
            "promotion_test": TEST_STATEMENT,
            "challenger": champions.trial_report(candidate) if candidate else None,
            "last_decision": _last_decision(),
            "last_training": _last_training(),
        },
    )


def _last_decision() -> dict | None:
    decision = ModelDecision.objects.first()
    if decision is None:
        return None
    return {
        "version": decision.version,
        "action": decision.action,
        "actor": decision.actor,
        "at": decision.at.isoformat(),
        "reason": decision.reason,
        "figures": decision.figures,
        "test": decision.test,
    }


def _last_training() -> dict | None:
    try:
        return last_training()
    except RedisError:
        return None


@service_check("ai")
def market_data() -> Check:
    # No fresh bars, no signals: ai is not ready without them.
    return market_data_check(critical=True)
