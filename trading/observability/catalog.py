"""Metrics every service has. Areas declare their own (named by the original spec) beside them."""

from __future__ import annotations

from trading.observability.metrics import Kind, declare_for_each_service

TASKS = declare_for_each_service(
    "tasks_total", Kind.COUNTER, "Celery tasks finished by this service", ("task", "state")
)
TASK_DURATION = declare_for_each_service(
    "task_duration_seconds", Kind.HISTOGRAM, "Wall time of this service's tasks", ("task",)
)

# Each area's own metrics, so that the web process knows every name it renders.
from trading.ai import health as _ai_health  # noqa: E402, F401
from trading.ai import metrics as _ai_metrics  # noqa: E402, F401
from trading.analytics import health as _analytics_health  # noqa: E402, F401
from trading.analytics import metrics as _analytics_metrics  # noqa: E402, F401
from trading.events import health as _events_health  # noqa: E402, F401
from trading.events import log as _events_log  # noqa: E402, F401
from trading.execution import health as _execution_health  # noqa: E402, F401
from trading.execution import metrics as _execution_metrics  # noqa: E402, F401
from trading.marketdata import metrics as _marketdata_metrics  # noqa: E402, F401
