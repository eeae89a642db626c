"""A bad environment stops every entry point with one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.processes import ROOT

ENTRY_POINTS = {
    "manage.py": [sys.executable, "manage.py", "check"],
    "celery": [sys.executable, "-m", "celery", "-A", "controlpanel", "report"],
    "asgi": [sys.executable, "-c", "import controlpanel.asgi"],
    "wsgi": [sys.executable, "-c", "import controlpanel.wsgi"],
}


def run(command, **changes):
    env = {**os.environ, **changes}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG='maybe' is not valid"),
        ("REDIS_URL", "http://x", "REDIS_URL='http://x' is not valid"),
        ("DATABASE_URL", "mysql://db/x", "DATABASE_URL='mysql://db/x' is not valid"),
        ("QT_HEARTBEAT_EXPIRY", "soon", "QT_HEARTBEAT_EXPIRY='soon' is not valid"),
        ("WS_PORT", "99999", "WS_PORT='99999' is not valid"),
        ("QT_DASHBOARD_SOCKET_URL", "http://x/ws/", "QT_DASHBOARD_SOCKET_URL='http://x/ws/' is"),
        ("QT_HEALTH_CACHE_SECONDS", "-1", "QT_HEALTH_CACHE_SECONDS='-1' is not valid"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(entry, variable, value, expected):
    result = run(ENTRY_POINTS[entry], **{variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("quantum-trader: configuration error: " + expected)


def test_production_mode_requires_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    result = subprocess.run(
        ENTRY_POINTS["manage.py"], cwd=ROOT, env={**env, "DJANGO_DEBUG": "false"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "quantum-trader: configuration error: DJANGO_SECRET_KEY is required but not set"
    )


def test_a_good_environment_passes_the_system_checks():
    result = run(ENTRY_POINTS["manage.py"])
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
