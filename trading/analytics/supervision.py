"""Supervision of the services: the analytics service's sweep, on a schedule.

A service is degraded when it is not ready (no live worker, Redis or the database away, its own
critical checks failing), when its queue holds more than ``QUEUE_BACKLOG_LIMIT`` tasks, or when
its consumer group holds event-log messages nobody has acknowledged for longer than
``STUCK_MESSAGE_SECONDS``. Each change of condition is an event: ``service.degraded`` (with a
``risk.alert``) and ``service.recovered``.

Remedies, where one exists: stuck messages are reclaimed by running the group's drain, which
claims them with XAUTOCLAIM; a queue that grows while the service's workers finish nothing gets
their pools restarted. Workers that are gone are the process supervisor's to restart.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import redis
from celery import current_app
from django.conf import settings

from trading import bus
from trading.analytics import metrics
from trading.events import outbox
from trading.events.envelope import new_event
from trading.events.log import events_stream
from trading.observability.heartbeat import WorkerBeat
from trading.observability.probes import queue_length, service_report
from trading.observability.services import SERVICES, Service
from trading.store import redis_client, rkey

logger = logging.getLogger(__name__)

# The consumer group through which each service reads the event log, and its drain task.
GROUPS = {
    "exec-risk": ("exec-risk", bus.EXEC_DRAIN_MARKET_EVENTS),
    "analytics": ("analytics", bus.ANALYTICS_DRAIN_EVENTS),
    "ai": ("ai", bus.AI_DRAIN_MARKET_EVENTS),
}


@dataclass
class Condition:
    service: str
    problems: list[str] = field(default_factory=list)
    remedies: list[metrics.Remedy] = field(default_factory=list)

    @property
    def degraded(self) -> bool:
        return bool(self.problems)


def stuck_messages(client: redis.Redis, group: str, idle_seconds: float) -> int:
    """Messages the group delivered and nobody acknowledged for longer than ``idle_seconds``."""
    try:
        pending = client.xpending_range(
            events_stream(), group, min="-", max="+", count=1000, idle=int(idle_seconds * 1000)
        )
    except redis.ResponseError:  # no such group yet: nothing is stuck
        return 0
    return len(pending)


def _tasks_done(workers: tuple[WorkerBeat, ...]) -> int:
    return sum(w.tasks_done for w in workers)


def inspect(service: Service, client: redis.Redis, previous: dict) -> Condition:
    condition = Condition(service.name)
    report = service_report(service)
    if not report.ready:
        condition.problems.append("not ready: " + ", ".join(c.component for c in report.failing))
    backlog = queue_length(client, service.queue)
    done = _tasks_done(report.workers)
    if backlog > settings.SUPERVISION_QUEUE_BACKLOG:
        condition.problems.append(f"queue {service.queue} holds {backlog} tasks")
        if report.workers and done == previous.get("tasks_done"):
            condition.remedies.append(metrics.Remedy.POOL_RESTART)
    group, _task = GROUPS[service.name]
    stuck = stuck_messages(client, group, settings.SUPERVISION_STUCK_SECONDS)
    if stuck:
        condition.problems.append(f"{stuck} event-log messages stuck in group {group}")
        condition.remedies.append(metrics.Remedy.RECLAIM)
    previous["tasks_done"] = done
    return condition


def remedy(service: Service, name: str) -> None:
    if name == metrics.Remedy.RECLAIM:
        _group, task = GROUPS[service.name]
        bus.send(task, queue=service.queue, expires=60)
    elif name == metrics.Remedy.POOL_RESTART:
        workers = service_report(service).workers
        current_app.control.pool_restart(destination=[w.node for w in workers], reload=False)
    metrics.AUTO_RESTARTS.inc(service=service.name, remedy=name)
    logger.warning("supervision: %s on %s", name, service.name)


def sweep() -> dict[str, dict]:
    """Inspects every service once; publishes changes of condition and applies remedies."""
    client = redis_client()
    results = {}
    for service in SERVICES.values():
        key = rkey("supervision", service.name)
        raw = client.get(key)
        previous = json.loads(raw) if raw else {}
        condition = inspect(service, client, previous)
        was_degraded = previous.get("degraded", False)
        if condition.degraded and not was_degraded:
            _announce("service.degraded", condition)
            outbox.record(
                [
                    new_event(
                        "risk.alert",
                        {
                            "reason": "SERVICE_DEGRADED",
                            "service": service.name,
                            "problems": condition.problems,
                        },
                        service="analytics",
                    )
                ]
            )
        elif was_degraded and not condition.degraded:
            _announce("service.recovered", condition)
        for name in condition.remedies:
            remedy(service, name)
        previous.update(degraded=condition.degraded, problems=condition.problems, at=time.time())
        client.set(key, json.dumps(previous))
        results[service.name] = {
            "degraded": condition.degraded,
            "problems": condition.problems,
            "remedies": condition.remedies,
        }
    metrics.HEALTH_CHECKS.inc()
    return results


def _announce(type_: str, condition: Condition) -> None:
    outbox.record(
        [
            new_event(
                type_,
                {"service": condition.service, "problems": condition.problems},
                service="analytics",
            )
        ]
    )
