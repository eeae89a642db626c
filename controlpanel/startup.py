"""Start-up of every entry point (``manage.py``, Celery, ASGI, WSGI): the variables ``make run``
chose, then the settings; a configuration error is one line on stderr, not a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def run_env_path(environ: MutableMapping[str, str]) -> Path:
    return Path(environ.get("QT_VAR_DIR") or BASE_DIR / "var") / "run.env"


def load_run_env(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Fills in, from the ``run.env`` that ``make run`` writes into the var directory (secret key,
    Redis URL with its password, host and ports), each variable ``environ`` does not set: a command
    run later in another shell reaches the same platform. Returns the names it filled in."""
    environ = os.environ if environ is None else environ
    path = run_env_path(environ)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        print(f"quantum-trader: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return []
    filled = []
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name or name.startswith("#"):
            continue
        if not environ.get(name, "").strip():
            environ[name] = value
            filled.append(name)
    return filled


def load_settings_or_exit() -> None:
    """Imports the settings now; on a bad environment prints one line and exits with status 2."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")
    load_run_env()
    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - forces the import
    except ImproperlyConfigured as exc:
        print(f"quantum-trader: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
