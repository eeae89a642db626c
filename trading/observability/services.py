"""The three services that do the trading work, each a Celery queue with its own workers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    name: str  # as it appears in URLs: /services/<name>/health
    queue: str  # the Celery queue its workers consume
    metric_prefix: str  # the original spec's Prometheus prefix
    title: str


AI = Service("ai", "ai", "ai_service", "AI signals")
EXEC_RISK = Service("exec-risk", "exec_risk", "exec_risk_service", "Execution and risk")
ANALYTICS = Service("analytics", "analytics", "analytics_os_service", "Analytics")

SERVICES: dict[str, Service] = {s.name: s for s in (AI, EXEC_RISK, ANALYTICS)}
_BY_QUEUE: dict[str, Service] = {s.queue: s for s in SERVICES.values()}


def service_for_queue(queue: str | None) -> Service | None:
    """Returns the service whose queue this is, or None for any other queue."""
    return _BY_QUEUE.get(queue or "")
