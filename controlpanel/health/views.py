"""Liveness, readiness and metrics: for the web process and for each service.

Every view reads recorded state (heartbeats and metric samples in Redis) and probes Redis and the
database with a short timeout; none sends a message to a worker. A health or ready answer is
computed at most once per ``QT_HEALTH_CACHE_SECONDS`` in each web worker and served again until
then (its ``time`` says when it was computed), so that a crowd of probes costs next to nothing.
The metrics pages want ``Authorization: Bearer <QT_METRICS_TOKEN>`` when that setting is set.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from trading.observability.health import Status
from trading.observability.probes import (
    probe_database,
    probe_redis,
    service_metrics_text,
    service_report,
)
from trading.observability.services import SERVICES, Service
from trading.selftest.metrics import SelfTestCollector

HEALTH_JSON = "application/health+json"


def _service(name: str) -> Service:
    try:
        return SERVICES[name]
    except KeyError:
        raise Http404(f"unknown service {name!r}; known: {', '.join(SERVICES)}") from None


# (view, service) -> (time.monotonic() when computed, HTTP status, JSON body)
_answers: dict[tuple[str, str], tuple[float, int, bytes]] = {}


def _health_response(
    key: tuple[str, str], compute: Callable[[], tuple[dict[str, object], bool]]
) -> HttpResponse:
    """200 with the body when ``compute`` says OK, else 503; reused for HEALTH_CACHE_SECONDS."""
    now = time.monotonic()
    answer = _answers.get(key)
    if answer is None or now - answer[0] >= settings.HEALTH_CACHE_SECONDS:
        body, ok = compute()
        answer = (now, 200 if ok else 503, json.dumps(body, cls=DjangoJSONEncoder).encode())
        _answers[key] = answer
    return HttpResponse(answer[2], status=answer[1], content_type=HEALTH_JSON)


def metrics_authorized(request: HttpRequest) -> bool:
    """True when no metrics token is set, or the request carries it as a bearer token."""
    token = settings.METRICS_TOKEN
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Bytes: compare_digest refuses str with non-ASCII characters, which a caller may send.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def metrics_token_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not metrics_authorized(request):
            refused = HttpResponse(
                "a bearer token is required\n", status=401, content_type="text/plain"
            )
            refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return refused
        return view(request, *args, **kwargs)

    return guarded


@require_GET
@never_cache
def service_health(request: HttpRequest, service: str) -> HttpResponse:
    def compute() -> tuple[dict[str, object], bool]:
        report = service_report(_service(service))
        return report.health_json(), report.status is not Status.FAIL

    return _health_response(("health", _service(service).name), compute)


@require_GET
@never_cache
def service_ready(request: HttpRequest, service: str) -> HttpResponse:
    def compute() -> tuple[dict[str, object], bool]:
        report = service_report(_service(service))
        return report.ready_json(), report.ready

    return _health_response(("ready", _service(service).name), compute)


@require_GET
@never_cache
@metrics_token_required
def service_metrics(request: HttpRequest, service: str) -> HttpResponse:
    return HttpResponse(service_metrics_text(_service(service)), content_type=CONTENT_TYPE_LATEST)


@require_GET
@never_cache
@metrics_token_required
def web_metrics(request: HttpRequest) -> HttpResponse:
    """The web process's own metrics (django-prometheus's and the system checks'). Under
    gunicorn, whose workers are several processes, ``PROMETHEUS_MULTIPROC_DIR`` is set
    (deploy/gunicorn.conf.py) and the page adds up every worker's samples, whichever answers."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(SelfTestCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@require_GET
@never_cache
def web_health(request: HttpRequest) -> HttpResponse:
    """The web process answers; its dependencies are reported but do not make it unhealthy."""

    def compute() -> tuple[dict[str, object], bool]:
        redis_check = probe_redis().check("redis")
        database_check = probe_database().check("database")
        checks = {c.component: c.as_json() for c in (redis_check, database_check)}
        failing = [c for c in (redis_check, database_check) if c.status is Status.FAIL]
        body = {
            "status": str(Status.WARN if failing else Status.PASS),
            "service": "web",
            "time": _now_iso(),
            "checks": checks,
            "services": {name: f"/services/{name}/health" for name in SERVICES},
        }
        return body, True

    return _health_response(("health", "web"), compute)


@require_GET
@never_cache
def web_ready(request: HttpRequest) -> HttpResponse:
    """Ready to serve pages and the API: Redis and the database answer."""

    def compute() -> tuple[dict[str, object], bool]:
        checks = [probe_redis().check("redis"), probe_database().check("database")]
        failing = [c.component for c in checks if c.status is Status.FAIL]
        body = {
            "status": "not ready" if failing else "ready",
            "service": "web",
            "time": _now_iso(),
            "checks": {c.component: c.as_json() for c in checks},
            "failing": failing,
        }
        return body, not failing

    return _health_response(("ready", "web"), compute)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
