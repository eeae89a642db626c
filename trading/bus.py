"""Work for a service, enqueued by name.

A producer never imports its consumer's ``tasks.py``: it sends the task's name here, and the
Celery app's routes (``controlpanel/celery.py``, by the name's area) pick the queue unless the
caller names one. So the tasks modules sit above the services they call, never below them.

The names below are the tasks other areas start; each is checked against the registered tasks by
``tests/unit/test_bus.py``.
"""

from __future__ import annotations

from typing import Any

from celery import current_app
from celery.result import AsyncResult

# ai (queue ``ai``)
AI_DRAIN_MARKET_EVENTS = "trading.ai.tasks.drain_market_events"
RETRAIN_MODEL = "trading.ai.tasks.retrain_model"

# exec-risk (queue ``exec_risk``)
PROCESS_SIGNAL = "trading.execution.tasks.process_signal"
SUBMIT_ORDER = "trading.execution.tasks.submit_order_task"
RECONCILE_ORDER = "trading.execution.tasks.reconcile_order_task"
FLATTEN_POSITIONS = "trading.execution.tasks.flatten_positions"
EXEC_DRAIN_MARKET_EVENTS = "trading.execution.tasks.drain_market_events"
RECONCILE_EXCHANGE = "trading.execution.tasks.reconcile_exchange"

# analytics (queue ``analytics``)
ANALYTICS_DRAIN_EVENTS = "trading.analytics.tasks.drain_events"
RUN_SELFTEST = "trading.analytics.tasks.run_selftest"
DELIVER_NOTIFICATIONS = "trading.notifications.tasks.deliver_notifications"
RUN_BACKTEST = "trading.backtest.tasks.run_backtest"

# Every service answers it, on the queue it is sent to.
PING_SERVICE = "trading.observability.ping_service"


def send(task: str, *args: Any, queue: str | None = None, **options: Any) -> AsyncResult:
    """Enqueues ``task`` (a name) with ``args``; ``queue`` overrides the app's route, and
    ``options`` are Celery's (``kwargs``, ``countdown``, ``expires``, ``task_id``...).

    A nudge nobody waits for should pass ``ignore_result=True``: the sender cannot see the
    task's own setting, and a result it never reads keeps a subscription open in this process."""
    if queue is not None:
        options["queue"] = queue
    return current_app.send_task(task, args=args, **options)
