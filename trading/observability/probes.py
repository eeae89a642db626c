"""Reads the recorded state of the platform for the health, ready and metrics views."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from prometheus_client.core import GaugeMetricFamily

from trading.observability import catalog  # noqa: F401 - declares the common metrics
from trading.observability.health import (
    Check,
    Probe,
    Report,
    Status,
    evaluate_service,
    service_checks,
)
from trading.observability.heartbeat import WorkerBeat, read_workers
from trading.observability.metrics import (
    build_families,
    declared,
    read_samples,
    render,
    scrape_collectors,
)
from trading.observability.services import Service
from trading.store import redis_probe_client


def _timed(action: Callable[[], object], errors: tuple[type[Exception], ...]) -> Probe:
    started = time.perf_counter()
    try:
        action()
    except errors as exc:
        return Probe(False, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
    return Probe(True, time.perf_counter() - started)


def probe_redis() -> Probe:
    return _timed(redis_probe_client().ping, (redis.RedisError, OSError))


def probe_database() -> Probe:
    def select_one() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    return _timed(select_one, (DatabaseError,))


def _own_checks(service: Service, database: Probe) -> tuple[Check, ...]:
    if not database.ok:
        return ()
    results = []
    for check in service_checks(service.name):
        try:
            results.append(check())
        except Exception as exc:  # a broken check must show, not break the health page
            results.append(Check(check.__name__, Status.FAIL, f"{type(exc).__name__}: {exc}"))
    return tuple(results)


def service_report(service: Service) -> Report:
    redis_probe = probe_redis()
    workers: list[WorkerBeat] = []
    if redis_probe.ok:
        try:
            workers = read_workers(redis_probe_client(), service.name)
        except redis.RedisError as exc:
            redis_probe = Probe(False, redis_probe.latency_seconds, str(exc))
    database = probe_database()
    return evaluate_service(
        service,
        workers,
        redis=redis_probe,
        database=database,
        now=time.time(),
        heartbeat_interval=settings.HEARTBEAT_INTERVAL_SECONDS,
        extra=_own_checks(service, database),
    )


def queue_length(client: redis.Redis, queue: str) -> int:
    """Messages waiting in a service's Celery queue (kombu keeps each queue as a Redis list)."""
    return int(client.llen(f"{settings.REDIS_PREFIX}:celery:{queue}"))


def service_metrics_text(service: Service) -> bytes:
    """The service's Prometheus page: uptime first, then liveness, then what workers recorded."""
    report = service_report(service)
    prefix = service.metric_prefix
    uptime = GaugeMetricFamily(
        f"{prefix}_uptime_seconds",
        "Seconds since the longest-running live worker of the service started",
        value=report.uptime_seconds,
    )
    ready = GaugeMetricFamily(
        f"{prefix}_ready", "1 while the service can do its work now, else 0", value=report.ready
    )
    workers = GaugeMetricFamily(
        f"{prefix}_workers", "Live workers consuming the service's queue", value=len(report.workers)
    )
    ages = GaugeMetricFamily(
        f"{prefix}_worker_heartbeat_age_seconds",
        "Seconds since each live worker's last heartbeat",
        labels=["worker"],
    )
    for worker in report.workers:
        ages.add_metric([worker.node], worker.age(report.now))
    families = [uptime, ready, workers, ages]
    if report.passed("redis"):
        client = redis_probe_client()
        try:
            samples = read_samples(client, service.name)
            backlog = queue_length(client, service.queue)
        except redis.RedisError:
            pass
        else:
            families.append(
                GaugeMetricFamily(
                    f"{prefix}_queue_length", "Tasks waiting in the service's queue", value=backlog
                )
            )
            # Only when read: zeros in place of unreadable counters would look like resets.
            families.extend(build_families(declared(service.name), samples))
    if report.passed("database"):
        for collector in scrape_collectors(service.name):
            families.extend(collector())
    return render(families)
