"""What every benchmark starts from: a real Redis server and a migrated SQLite database in a
directory of its own, Django set up in the benchmark's process under the same environment that
the servers and workers it starts inherit; and the percentile the figures are read with."""

from __future__ import annotations

import os
from pathlib import Path

from deploy.redis_server import LocalRedis, free_port


def start_platform(var: Path, **environ: str) -> LocalRedis:
    """Starts Redis, points the settings at it and at ``var``, migrates; returns the server (to
    stop). ``environ`` adds or overrides settings for this run."""
    redis_server = LocalRedis(free_port(), var / "redis").start()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="controlpanel.settings",
        DJANGO_SECRET_KEY="bench-secret-key-bench-secret-key-bench-secret",
        DJANGO_DEBUG="false",
        QT_VAR_DIR=str(var),
        REDIS_URL=redis_server.url,
        # This process only; the servers and workers log as make run's do.
        QT_LOG_LEVEL="WARNING",
        **environ,
    )
    os.environ.pop("DATABASE_URL", None)
    (var / "static").mkdir(exist_ok=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return redis_server


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
