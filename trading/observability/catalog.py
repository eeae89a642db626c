"""Metrics every service has. Areas declare their own (named by the original spec) beside them."""

from __future__ import annotations

from trading.observability.metrics import Kind, declare_for_each_service

TASKS = declare_for_each_service(
    "tasks_total", Kind.COUNTER, "Celery tasks finished by this service", ("task", "state")
)
TASK_DURATION = declare_for_each_service(
    "task_duration_seconds", Kind.HISTOGRAM, "Wall time of this service's tasks", ("task",)
)
