"""The deployment files are valid for the tools that read them."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess

import pytest
import yaml

from tests.support.compose import (
    compose_services,
    init_service,
    make_run_preparation,
    normalised_command,
    supervisord_programs,
)
from tests.support.processes import ROOT
from trading.management.commands.prepare_platform import STEPS

APP_CONTAINERS = (
    "web", "websocket", "worker-ai", "worker-exec-risk", "worker-analytics", "beat", "feed",
)  # fmt: skip


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


def test_compose_runs_every_make_run_process_with_the_same_command():
    services = compose_services()
    programs = supervisord_programs()
    assert set(programs) >= {"web", "websocket", "beat", "feed", "worker-ai"}
    for name, command in programs.items():
        if name == "redis":  # compose runs Redis from its own image
            continue
        assert name in services, f"make run's {name} is missing from docker-compose.yml"
        assert normalised_command(services[name]["command"]) == normalised_command(command), name


def test_compose_prepares_the_platform_as_make_run_does_before_the_processes_start():
    services = compose_services()
    init = init_service(services)
    assert services[init]["restart"] == "no"
    assert services[init]["command"] == ["python", "manage.py", "prepare_platform"]
    for name in APP_CONTAINERS:
        assert services[name]["depends_on"] == {
            init: {"condition": "service_completed_successfully"}
        }, name
    make_run = make_run_preparation()
    assert [name for name, _ in make_run] == [name for name, *_ in STEPS]
    for (name, options), (_, *required) in zip(make_run, STEPS, strict=True):
        assert set(required) <= options, f"deploy/run.py runs {name} without {required}"


def test_every_app_container_knows_the_feeds_source_and_pace():
    # The feed publishes at this pace and the health views (web) judge freshness by it.
    services = compose_services()
    for name in (*APP_CONTAINERS, init_service(services)):
        environment = services[name]["environment"]
        assert environment["QT_MARKET_DATA"] == "${QT_MARKET_DATA:-replay}", name
        assert environment["QT_REPLAY_BAR_SECONDS"] == "${QT_REPLAY_BAR_SECONDS:-1}", name


def test_the_image_ships_the_klines_the_feed_replays():
    from trading.marketdata.klines import BUNDLED_DIR, bundled_symbols

    assert bundled_symbols()
    copied = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    assert any(words[:1] == ["COPY"] and words[-2:] == [".", "."] for words in copied)
    ignored = [p.strip("/") for p in (ROOT / ".dockerignore").read_text().split()]
    for path in BUNDLED_DIR.iterdir():
        parts = path.relative_to(ROOT).parts
        # Docker leaves out a path when a pattern matches it or a directory above it; fnmatch's
        # * also crosses "/", so this errs on the side of finding a match.
        for prefix in ("/".join(parts[:n]) for n in range(1, len(parts) + 1)):
            for pattern in ignored:
                matched = fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
                assert not matched, f".dockerignore's {pattern} leaves {path.name} out of the image"
