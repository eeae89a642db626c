"""analytics' metrics, named by the original spec."""

from __future__ import annotations

from enum import StrEnum

from trading.ai.metrics import TrainingTrigger
from trading.events.types import EventType
from trading.observability.metrics import Kind, declare
from trading.observability.services import SERVICES

S = "analytics"


class Remedy(StrEnum):
    """What supervision does for a degraded service."""

    RECLAIM = "reclaim"  # drain the event-log messages stuck with a dead consumer
    POOL_RESTART = "pool_restart"  # restart the pools of workers that make no progress


EVENTS_RECEIVED = declare(
    S,
    "analytics_os_service_events_received_total",
    Kind.COUNTER,
    "Events read from the log by the analytics consumer group",
    {"type": EventType},
)
HEALTH_CHECKS = declare(
    S, "analytics_os_service_health_checks_total", Kind.COUNTER, "Supervision sweeps run"
)
AUTO_RESTARTS = declare(
    S,
    "analytics_os_service_auto_restarts_total",
    Kind.COUNTER,
    "Remedies applied by supervision (reclaimed messages, restarted pools)",
    {"service": SERVICES, "remedy": Remedy},
)
REBALANCES = declare(
    S, "analytics_os_service_rebalances_executed_total", Kind.COUNTER, "Rebalancing trims sent"
)
AMPLIFICATIONS = declare(
    S,
    "analytics_os_service_profit_amplifications_total",
    Kind.COUNTER,
    "Signals sized up by a sizing multiplier above 1",
)
RETRAININGS = declare(
    S,
    "analytics_os_service_retrainings_triggered_total",
    Kind.COUNTER,
    "Retraining requests sent to the ai service",
    {"trigger": TrainingTrigger},
)
LEARNING_RECORDED = declare(
    S,
    "analytics_os_service_learning_records_total",
    Kind.COUNTER,
    "Closed positions recorded against the signal and model that opened them",
)
DRIFT = declare(
    S,
    "analytics_os_service_drift_detected",
    Kind.GAUGE,
    "1 while the live features have drifted from the model's training data, else 0",
)
MAX_PSI = declare(
    S,
    "analytics_os_service_feature_psi_max",
    Kind.GAUGE,
    "The largest population stability index over the model's features at the last check",
)
