"""Turns a configuration error into one line on stderr at start-up, instead of a traceback."""

from __future__ import annotations

import os
import sys

from django.core.exceptions import ImproperlyConfigured


def load_settings_or_exit() -> None:
    """Imports the settings now; on a bad environment prints one line and exits with status 2."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlpanel.settings")
    try:
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - forces the import
    except ImproperlyConfigured as exc:
        print(f"quantum-trader: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
