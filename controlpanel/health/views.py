"""Liveness, readiness and metrics: for the web process and for each service.

Every view reads recorded state (heartbeats and metric samples in Redis) and probes Redis and the
database with a short timeout; none sends a message to a worker. The metrics pages want
``Authorization: Bearer <QT_METRICS_TOKEN>`` when that setting is set.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView
from prometheus_client import CONTENT_TYPE_LATEST

from trading.observability.health import Status
from trading.observability.probes import (
    probe_database,
    probe_redis,
    service_metrics_text,
    service_report,
)
from trading.observability.services import SERVICES, Service

HEALTH_JSON = "application/health+json"


def _service(name: str) -> Service:
    try:
        return SERVICES[name]
    except KeyError:
        raise Http404(f"unknown service {name!r}; known: {', '.join(SERVICES)}") from None


def _health_response(body: dict[str, object], ok: bool) -> JsonResponse:
    return JsonResponse(body, status=200 if ok else 503, content_type=HEALTH_JSON)


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
def service_health(request: HttpRequest, service: str) -> JsonResponse:
    report = service_report(_service(service))
    return _health_response(report.health_json(), report.status is not Status.FAIL)


@require_GET
@never_cache
def service_ready(request: HttpRequest, service: str) -> JsonResponse:
    report = service_report(_service(service))
    return _health_response(report.ready_json(), report.ready)


@require_GET
@never_cache
@metrics_token_required
def service_metrics(request: HttpRequest, service: str) -> HttpResponse:
    return HttpResponse(service_metrics_text(_service(service)), content_type=CONTENT_TYPE_LATEST)


@require_GET
@never_cache
@metrics_token_required
def web_metrics(request: HttpRequest) -> HttpResponse:
    """The web process's own metrics, as django-prometheus exports them."""
    return ExportToDjangoView(request)


@require_GET
@never_cache
def web_health(request: HttpRequest) -> JsonResponse:
    """The web process answers; its dependencies are reported but do not make it unhealthy."""
    redis_check = probe_redis().check("redis")
    database_check = probe_database().check("database")
    checks = {c.component: c.as_json() for c in (redis_check, database_check)}
    failing = [c for c in (redis_check, database_check) if c.status is Status.FAIL]
    body = {
        "status": str(Status.WARN if failing else Status.PASS),
        "service": "web",
        "checks": checks,
        "services": {name: f"/services/{name}/health" for name in SERVICES},
    }
    return _health_response(body, True)


@require_GET
@never_cache
def web_ready(request: HttpRequest) -> JsonResponse:
    """Ready to serve pages and the API: Redis and the database answer."""
    checks = [probe_redis().check("redis"), probe_database().check("database")]
    failing = [c.component for c in checks if c.status is Status.FAIL]
    body = {
        "status": "not ready" if failing else "ready",
        "service": "web",
        "checks": {c.component: c.as_json() for c in checks},
        "failing": failing,
    }
    return _health_response(body, not failing)
