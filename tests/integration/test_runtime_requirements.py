"""`make run` installs requirements.txt and nothing else: a virtual environment built from it alone
must import everything the web, websocket, worker, beat and feed processes import, and pin every
distribution it installs (the test requirements, installed by `make test`, would otherwise hide a
missing one, and an unpinned one is a version nobody tested)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ROOT

REQUIREMENTS = ROOT / "requirements.txt"
# What `python -m venv` brings, whatever requirements.txt says.
VENV_TOOLS = {"pip", "setuptools", "wheel"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """Requirement lines of ``path`` by canonical name: the line as written."""
    found = {}
    for raw in path.read_text().splitlines():
        line = raw.partition("#")[0].strip()
        if line:
            found[canonical(re.split(r"[\s\[=<>!~;]", line, maxsplit=1)[0])] = line
    return found


@pytest.fixture(scope="module")
def runtime_python(tmp_path_factory) -> Iterator[Path]:
    """A virtual environment with requirements.txt installed, as `make run` builds it (a few
    hundred megabytes, removed afterwards; pip's cache makes it quick)."""
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", REQUIREMENTS],
        capture_output=True,
        text=True,
        env=isolated_env(),
    )
    assert install.returncode == 0, f"pip install -r requirements.txt failed:\n{install.stderr}"
    yield python
    shutil.rmtree(venv, ignore_errors=True)


def isolated_env() -> dict[str, str]:
    """Nothing from this test run's environment may stand in for a missing package."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def import_check(runtime_python) -> subprocess.CompletedProcess:
    """tests/support/runtime_imports.py run under the runtime environment."""
    return subprocess.run(
        [runtime_python, "-m", "tests.support.runtime_imports"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=isolated_env(),
    )


def distributions(check: subprocess.CompletedProcess) -> dict[str, dict[str, str]]:
    """``imported`` and ``installed``: distribution names and versions."""
    assert check.returncode == 0, (
        "a process of `make run` cannot import what it needs from requirements.txt alone:\n"
        + check.stderr
    )
    return json.loads(check.stdout)


def test_every_requirement_is_pinned_to_one_version():
    loose = [line for line in pins(REQUIREMENTS).values() if "==" not in line]
    assert not loose, f"requirements.txt pins loosely: {loose}"


@pytest.mark.timeout(900)
def test_requirements_txt_alone_imports_what_every_process_imports(import_check):
    imported = distributions(import_check)["imported"]
    assert {"django", "celery", "kombu", "gunicorn", "uvicorn", "supervisor"} <= {
        canonical(name) for name in imported
    }


@pytest.mark.timeout(900)
def test_every_distribution_the_processes_use_is_pinned(import_check):
    """A distribution that comes in unpinned, through another, is a version nobody tested; some
    are imported only when first used (httpx's transport), so all that pip installs count."""
    found = distributions(import_check)
    # The virtual environment's own tools, unless the platform imports them.
    found["installed"] = {
        name: version
        for name, version in found["installed"].items()
        if canonical(name) not in VENV_TOOLS
    }
    pinned = pins(REQUIREMENTS)
    missing = sorted(
        {
            f"{name}=={version}"
            for kind in ("imported", "installed")
            for name, version in found[kind].items()
            if canonical(name) not in pinned
        }
    )
    assert not missing, f"installed by requirements.txt but not pinned there: {missing}"
