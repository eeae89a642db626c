"""Celery signal receivers: every worker beats, and every task is counted for its service.

The heartbeat thread runs in the worker's main process and starts once the pool is up, so forked
pool processes never inherit it. Task metrics are recorded in whichever process runs the task;
they land in Redis, where the web process reads them for all processes and hosts at once.
"""

from __future__ import annotations

import logging
import os
import socket
import time

import redis
from celery import signals

from trading.observability.services import service_for_queue

logger = logging.getLogger(__name__)

_state: dict[str, object] = {}
_started_at: dict[str, float] = {}


@signals.celeryd_after_setup.connect
def _remember_identity(sender: str, instance, **kwargs) -> None:
    _state["node"] = sender
    _state["queues"] = tuple(sorted(instance.app.amqp.queues.consume_from))


@signals.worker_ready.connect
def _start_heartbeat(sender, **kwargs) -> None:
    from django.conf import settings

    from trading.observability.heartbeat import HeartbeatThread, WorkerBeat
    from trading.store import redis_client

    now = time.time()
    beat = WorkerBeat(
        node=str(_state.get("node") or sender.hostname),
        host=socket.gethostname(),
        pid=os.getpid(),
        queues=tuple(_state.get("queues") or ()),
        started=now,
        last_beat=now,
    )
    thread = HeartbeatThread(
        redis_client(),
        beat,
        interval=settings.HEARTBEAT_INTERVAL_SECONDS,
        expiry=settings.HEARTBEAT_EXPIRY_SECONDS,
        clock=time.time,
    )
    thread.beat_once()
    thread.start()
    _state["heartbeat"] = thread
    logger.info("heartbeat started for %s on queues %s", beat.node, ",".join(beat.queues))


@signals.worker_shutdown.connect
def _stop_heartbeat(**kwargs) -> None:
    from trading.observability.heartbeat import remove_heartbeat
    from trading.store import redis_client

    thread = _state.pop("heartbeat", None)
    if thread is None:
        return
    thread.stop()
    try:
        remove_heartbeat(redis_client(), thread.beat)
    except redis.RedisError:
        logger.warning("could not withdraw the heartbeat of %s", thread.beat.node)


@signals.task_prerun.connect
def _task_started(task_id: str, **kwargs) -> None:
    _started_at[task_id] = time.perf_counter()
    # As Django does around a request: a connection past CONN_MAX_AGE, or broken, is replaced;
    # any other is kept (CELERY_DB_REUSE_MAX stops Celery from closing it after every task).
    from django.db import close_old_connections

    close_old_connections()


@signals.task_postrun.connect
def _task_finished(task_id: str, task, state: str | None = None, **kwargs) -> None:
    from trading.observability.catalog import TASK_DURATION, TASKS
    from trading.observability.heartbeat import count_task
    from trading.store import redis_client

    started = _started_at.pop(task_id, None)
    delivery = getattr(task.request, "delivery_info", None) or {}
    service = service_for_queue(delivery.get("routing_key"))
    try:
        # One round trip for the worker's count and the service's task metrics.
        pipe = redis_client().pipeline(transaction=False)
        if task.request.hostname:
            count_task(pipe, task.request.hostname)
        if service is not None:
            TASKS[service.name].inc(task=task.name, state=(state or "UNKNOWN").lower(), client=pipe)
            if started is not None:
                TASK_DURATION[service.name].observe(
                    time.perf_counter() - started, task=task.name, client=pipe
                )
        pipe.execute()
    except redis.RedisError:
        logger.warning("could not record metrics for task %s", task.name)


@signals.task_failure.connect
def _task_failed(sender=None, task_id: str = "", exception=None, **kwargs) -> None:
    """The service's last error, for its dashboard tile: which task, what, when."""
    import json

    from trading.store import redis_client, rkey

    delivery = getattr(sender.request, "delivery_info", None) or {} if sender else {}
    service = service_for_queue(delivery.get("routing_key"))
    if service is None:
        return
    record = {
        "task": getattr(sender, "name", ""),
        "error": f"{type(exception).__name__}: {exception}"[:300],
        "at": time.time(),
    }
    try:
        redis_client().set(rkey("last_error", service.name), json.dumps(record))
    except redis.RedisError:
        logger.warning("could not record the failure of task %s", task_id)
