"""Health and readiness of a service, judged from recorded state only.

Pure: the caller reads heartbeats and probes Redis and the database, then passes the results and
the clock in. Nothing here sends a message to a worker, so a health request costs a few
milliseconds whatever the workers are doing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from trading.observability.heartbeat import WorkerBeat
from trading.observability.services import Service


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 - a health status, not a password
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    component: str
    status: Status
    output: str = ""
    observed: dict[str, object] = field(default_factory=dict)
    # A failing critical check makes the service not ready; others only lower its health.
    critical: bool = True

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {"status": str(self.status), **self.observed}
        if self.output:
            data["output"] = self.output
        return data


@dataclass(frozen=True)
class Probe:
    """The outcome of asking a dependency whether it answers."""

    ok: bool
    latency_seconds: float
    error: str = ""

    def check(self, component: str) -> Check:
        observed = {"latency_ms": round(self.latency_seconds * 1000, 2)}
        if self.ok:
            return Check(component, Status.PASS, observed=observed)
        return Check(component, Status.FAIL, self.error or "no answer", observed)


@dataclass(frozen=True)
class Report:
    service: str
    checks: tuple[Check, ...]
    workers: tuple[WorkerBeat, ...]
    now: float

    @property
    def ready(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks if c.critical)

    @property
    def status(self) -> Status:
        statuses = {c.status for c in self.checks}
        if Status.FAIL in statuses:
            return Status.FAIL
        if Status.WARN in statuses:
            return Status.WARN
        return Status.PASS

    def passed(self, component: str) -> bool:
        return any(c.component == component and c.status is Status.PASS for c in self.checks)

    @property
    def failing(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.FAIL and c.critical]

    @property
    def uptime_seconds(self) -> float:
        """Time since the longest-running live worker of the service started; 0 with none."""
        if not self.workers:
            return 0.0
        return max(0.0, self.now - min(w.started for w in self.workers))

    def health_json(self) -> dict[str, object]:
        return {
            "status": str(self.status),
            "service": self.service,
            "ready": self.ready,
            "time": datetime.fromtimestamp(self.now, UTC).isoformat(),
            "uptime_seconds": round(self.uptime_seconds, 3),
            "checks": {c.component: c.as_json() for c in self.checks},
            "workers": [w.as_json(self.now) for w in self.workers],
        }

    def ready_json(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "not ready",
            "service": self.service,
            "time": datetime.fromtimestamp(self.now, UTC).isoformat(),
            "checks": {c.component: c.as_json() for c in self.checks if c.critical},
            "failing": [c.component for c in self.failing],
        }


def worker_check(service: Service, workers: list[WorkerBeat], now: float, interval: float) -> Check:
    """Passes with a live worker on the queue; warns when a heartbeat is late but not expired."""
    observed: dict[str, object] = {"queue": service.queue, "live": len(workers)}
    if not workers:
        return Check(
            "workers", Status.FAIL, f"no live worker consumes queue {service.queue}", observed
        )
    late = [w.node for w in workers if w.age(now) > 2 * interval]
    observed["oldest_heartbeat_age_seconds"] = round(max(w.age(now) for w in workers), 3)
    if late:
        return Check("workers", Status.WARN, "late heartbeat from " + ", ".join(late), observed)
    return Check("workers", Status.PASS, observed=observed)


def evaluate_service(
    service: Service,
    workers: list[WorkerBeat],
    *,
    redis: Probe,
    database: Probe,
    now: float,
    heartbeat_interval: float,
    extra: tuple[Check, ...] = (),
) -> Report:
    """Ready while a live worker consumes the queue and Redis and the database answer."""
    checks = (
        worker_check(service, workers, now, heartbeat_interval),
        redis.check("redis"),
        database.check("database"),
        *extra,
    )
    return Report(service.name, checks, tuple(workers), now)


# Each service registers checks of its own state (exchange, market data, trading state); the
# health views run them after the common ones.
ServiceCheck = Callable[[], Check]
_SERVICE_CHECKS: dict[str, list[ServiceCheck]] = {}


def service_check(service: str) -> Callable[[ServiceCheck], ServiceCheck]:
    """Registers a check of the service's own state, shown on its health and ready pages."""

    def register(check: ServiceCheck) -> ServiceCheck:
        checks = _SERVICE_CHECKS.setdefault(service, [])
        if check not in checks:
            checks.append(check)
        return check

    return register


def service_checks(service: str) -> list[ServiceCheck]:
    return list(_SERVICE_CHECKS.get(service, []))
