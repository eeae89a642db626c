"""A fresh platform (empty Redis, empty database) exports every metric the original spec names
from its first scrape, the counters at 0, and pages promtool accepts."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_workers
from tests.support.spec_metrics import service_of, spec_metric_names
from trading.observability.services import SERVICES

pytestmark = pytest.mark.django_db(transaction=True)

# A Redis database of its own, emptied first: no counter the session's tests moved is on it.
ISOLATED_DB = 9


@pytest.fixture
def fresh_platform(settings, process_env, redis_server):
    url = f"redis://127.0.0.1:{redis_server.port}/{ISOLATED_DB}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    settings.REDIS_URL = url
    env = {**process_env, "REDIS_URL": url}
    nodes = [(f"{s.queue}@fresh", s.queue) for s in SERVICES.values()]
    workers = start_workers(nodes, env)
    yield
    for worker in workers:
        worker.stop()


def scrape(client, service: str) -> str:
    response = client.get(f"/services/{service}/metrics")
    assert response.status_code == 200
    return response.content.decode()


def test_every_spec_metric_is_exported_from_the_first_scrape_with_unmoved_counters_at_0(
    client, fresh_platform
):
    names = spec_metric_names()
    pages = {service: scrape(client, service) for service in SERVICES}
    samples = {
        service: [s for f in text_string_to_metric_families(text) for s in f.samples]
        for service, text in pages.items()
    }
    missing, moved = [], {}
    for name in sorted(names):
        values = [s.value for s in samples[service_of(name).name] if s.name == name]
        if not values:
            missing.append(name)
        elif name.endswith("_total") and any(values):
            moved[name] = values
    assert missing == [], f"named by the spec, not on the first scrape: {missing}"
    assert moved == {}, f"counters not at 0 on a platform that did nothing: {moved}"

    def labelled(name: str, label: str) -> set[str]:
        return {s.labels[label] for s in samples[service_of(name).name] if s.name == name}

    # Labelled counters carry every known value, not just one series.
    assert labelled("exec_risk_service_risk_alerts_total", "reason") >= {
        "DAILY_LOSS_LIMIT",
        "MAX_DRAWDOWN",
    }
    assert labelled("analytics_os_service_auto_restarts_total", "service") == set(SERVICES)
    assert "drift" in labelled("analytics_os_service_retrainings_triggered_total", "trigger")
    assert "order.filled" in labelled("analytics_os_service_events_received_total", "type")


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
@pytest.mark.parametrize("service", list(SERVICES))
def test_promtool_finds_nothing_to_fix_on_a_fresh_metrics_page(client, fresh_platform, service):
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=scrape(client, service),
        capture_output=True,
        text=True,
        timeout=60,
    )
    # 3: lint problems only (1 would be a page it cannot parse). The spec's names stay as the
    # spec wrote them, whatever the lint says of them (positions_count is not a histogram's).
    assert result.returncode in (0, 3), result.stdout + result.stderr
    problems = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and line.split()[0] not in spec_metric_names()
    ]
    assert problems == []
