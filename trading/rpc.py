"""Calls between services with a deadline: a Celery task sent to the service's queue, its answer
awaited for at most ``RPC_TIMEOUT_SECONDS``, and the call sent again up to ``RPC_RETRIES`` times.

Only idempotent tasks are called this way (``process_signal`` acts once per signal however often
it is delivered), so a retry after a slow first delivery can never place a second order.
"""

from __future__ import annotations

import logging
import time

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings

from trading import bus
from trading.execution import metrics

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.01


class RpcTimeout(Exception):
    """No answer within the deadline, after every retry."""

    def __init__(self, task: str, attempts: int, timeout: float) -> None:
        super().__init__(
            f"{task} did not answer within {timeout * 1000:.0f} ms "
            f"({attempts} attempt{'s' if attempts > 1 else ''})"
        )
        self.task = task
        self.attempts = attempts
        self.timeout = timeout


def call(
    task: str,
    *args,
    timeout: float | None = None,
    retries: int | None = None,
    queue: str | None = None,
    **kwargs,
):
    """Runs the task named ``task`` on its service (or on ``queue``) and returns its result;
    raises ``RpcTimeout`` when no attempt answered in time."""
    timeout = settings.RPC_TIMEOUT_SECONDS if timeout is None else timeout
    retries = settings.RPC_RETRIES if retries is None else retries
    attempts = 0
    pending = []
    for _ in range(retries + 1):
        attempts += 1
        result = bus.send(task, *args, kwargs=kwargs, queue=queue, expires=max(timeout * 4, 5))
        pending.append(result)
        # Celery's get(timeout=...) waits in whole-second steps; poll to keep the deadline exact.
        deadline = time.monotonic() + timeout
        while not result.ready() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        try:
            if not result.ready():
                raise CeleryTimeout()
            return result.get(timeout=1, propagate=True, disable_sync_subtasks=False)
        except CeleryTimeout:
            metrics.RPC_TIMEOUTS.inc(task=task)
            logger.warning("rpc %s timed out after %.0f ms (attempt %d)", task,
                           timeout * 1000, attempts)  # fmt: skip
    for result in pending:
        result.forget()
    raise RpcTimeout(task, attempts, timeout)


def await_task(task_id: str, name: str, *, timeout: float | None = None):
    """The result of a task someone else sends under ``task_id`` (the outbox relay's hand-off),
    awaited for at most ``timeout`` (the whole RPC budget, all retries' worth, by default);
    raises ``RpcTimeout`` when it has none by then, and Redis's errors when it cannot look."""
    from celery.result import AsyncResult

    if timeout is None:
        timeout = settings.RPC_TIMEOUT_SECONDS * (settings.RPC_RETRIES + 1)
    result = AsyncResult(task_id)
    deadline = time.monotonic() + timeout
    while not result.ready():
        if time.monotonic() >= deadline:
            metrics.RPC_TIMEOUTS.inc(task=name)
            raise RpcTimeout(name, 1, timeout)
        time.sleep(POLL_SECONDS)
    return result.get(timeout=1, propagate=True, disable_sync_subtasks=False)
