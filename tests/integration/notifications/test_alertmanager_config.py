"""Alertmanager as docker-compose runs it: a valid configuration whose one receiver is the
platform's webhook, Prometheus pointed at it, the token handed over from the environment."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from django.urls import resolve

from tests.support.processes import ROOT

CONFIG = ROOT / "monitoring" / "alertmanager" / "alertmanager.yml"


def load_yaml(path):
    return yaml.safe_load(path.read_text())


@pytest.mark.skipif(not shutil.which("amtool"), reason="amtool not installed")
def test_amtool_check_config():
    result = subprocess.run(
        ["amtool", "check-config", str(CONFIG.relative_to(ROOT))],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_goes_to_the_platform_webhook_with_the_bearer_token():
    config = load_yaml(CONFIG)
    [receiver] = config["receivers"]
    assert config["route"]["receiver"] == receiver["name"]
    [webhook] = receiver["webhook_configs"]
    assert webhook["url"] == "http://web:8000/api/v1/alerts/alertmanager"
    assert webhook["send_resolved"] is True
    assert resolve("/api/v1/alerts/alertmanager").url_name == "api-alerts-alertmanager"
    authorization = webhook["http_config"]["authorization"]
    assert authorization["type"] == "Bearer"

    services = load_yaml(ROOT / "docker-compose.yml")["services"]
    alertmanager = services["alertmanager"]
    assert (
        "./monitoring/alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"
        in alertmanager["volumes"]
    )
    # The container writes the token where the configuration reads it.
    assert authorization["credentials_file"] in " ".join(alertmanager["command"])
    assert "QT_ALERTMANAGER_TOKEN" in alertmanager["environment"]
    assert "QT_ALERTMANAGER_TOKEN" in services["web"]["environment"]


def test_prometheus_sends_its_alerts_to_alertmanager():
    config = load_yaml(ROOT / "monitoring" / "prometheus" / "prometheus.yml")
    targets = [
        target
        for manager in config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]
    assert targets == ["alertmanager:9093"]
