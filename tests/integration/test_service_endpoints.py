"""The health, ready and metrics pages, served by Django against the real Redis and workers."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trading.observability.services import SERVICES

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _workers(service_workers, ai_ready):
    return service_workers


@pytest.mark.parametrize("service", list(SERVICES))
def test_a_service_with_a_live_worker_is_ready(client, service):
    response = client.get(f"/services/{service}/ready")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ready"
    assert response.json()["failing"] == []


@pytest.mark.parametrize("service", list(SERVICES))
def test_health_lists_checks_and_workers_with_heartbeat_ages(client, service):
    response = client.get(f"/services/{service}/health")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/health+json"
    body = response.json()
    assert body["status"] in ("pass", "warn")
    assert set(body["checks"]) >= {"workers", "redis", "database"}
    (worker,) = [w for w in body["workers"] if w["node"].endswith("@tests")]
    assert worker["queues"] == [SERVICES[service].queue]
    assert 0 <= worker["heartbeat_age_seconds"] < 3
    assert body["uptime_seconds"] > 0


@pytest.mark.parametrize("service", list(SERVICES))
def test_service_metrics_parse_and_start_with_uptime(client, service):
    response = client.get(f"/services/{service}/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = list(text_string_to_metric_families(response.content.decode()))
    prefix = SERVICES[service].metric_prefix
    assert families[0].name == f"{prefix}_uptime_seconds"
    assert families[0].samples[0].value > 0
    by_name = {f.name: f for f in families}
    assert by_name[f"{prefix}_ready"].samples[0].value == 1
    assert by_name[f"{prefix}_workers"].samples[0].value >= 1
    assert all(f.name.startswith(prefix + "_") for f in families)


def test_the_web_process_has_its_own_health_ready_and_metrics(client):
    assert client.get("/health").json()["status"] == "pass"
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["failing"] == []
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    names = {f.name for f in text_string_to_metric_families(metrics.content.decode())}
    assert "django_http_requests_before_middlewares" in names


@pytest.mark.parametrize("kind", ["health", "ready", "metrics"])
def test_an_unknown_service_is_a_404(client, kind):
    assert client.get(f"/services/nope/{kind}").status_code == 404


def test_ready_is_503_with_the_failing_checks_when_redis_does_not_answer(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/services/ai/ready")
    assert response.status_code == 503
    # market data lives in Redis too, so it cannot be vouched for either
    assert set(response.json()["failing"]) == {"workers", "redis", "market_data"}
    assert client.get("/ready").status_code == 503
    metrics = client.get("/services/ai/metrics")
    assert metrics.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(metrics.content.decode())}
    assert families["ai_service_ready"].samples[0].value == 0


def test_a_health_answer_is_reused_for_the_cache_seconds_then_computed_again(client, settings):
    """Under load a web worker answers probes from its last answer, at most
    ``QT_HEALTH_CACHE_SECONDS`` old; the answer says when it was computed."""
    from trading.store import redis_client, rkey

    settings.HEALTH_CACHE_SECONDS = 0
    first = client.get("/services/ai/ready")  # computed now, and kept
    assert first.status_code == 200
    settings.HEALTH_CACHE_SECONDS = 60
    # ai loses its market data: the reused answer still says ready, computed when it was.
    redis_client().delete(rkey("prices"))
    again = client.get("/services/ai/ready")
    assert (again.status_code, again.content) == (first.status_code, first.content)

    settings.HEALTH_CACHE_SECONDS = 0
    now = client.get("/services/ai/ready")
    assert now.status_code == 503
    assert now.json()["failing"] == ["market_data"]
    assert now.json()["time"] > first.json()["time"]
