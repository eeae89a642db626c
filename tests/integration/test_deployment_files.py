"""The deployment files are valid for the tools that read them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.support.processes import ROOT

APP_CONTAINERS = ("web", "websocket", "worker-ai", "worker-exec-risk", "worker-analytics", "beat")


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose is not installed")
def test_docker_compose_file_is_valid():
    env = {**os.environ, "DJANGO_SECRET_KEY": "x" * 50}
    result = subprocess.run(
        ["docker-compose", "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_every_process_with_a_ready_healthcheck_and_redis_aof():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"redis", "postgres", "prometheus", "grafana", *APP_CONTAINERS}
    for name in APP_CONTAINERS:
        test = " ".join(services[name]["healthcheck"]["test"])
        assert "/ready" in test, name
        assert services[name]["restart"] == "unless-stopped"
    assert "--appendonly" in services["redis"]["command"]


def test_docker_compose_refuses_to_start_without_a_secret_key():
    if not shutil.which("docker-compose"):
        pytest.skip("docker-compose is not installed")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    result = subprocess.run(
        ["docker-compose", "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool is not installed")
def test_prometheus_configuration_is_valid():
    result = subprocess.run(
        ["promtool", "check", "config", "monitoring/prometheus/prometheus.yml"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
