"""What every benchmark starts from: a real Redis server and a migrated SQLite database in a
directory of its own, Django set up in the benchmark's process under the same environment that
the servers and workers it starts inherit; the percentile the figures are read with; and the
resident size of processes and their children."""

from __future__ import annotations

import gc
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
    # As the web and worker processes do once started (deploy/gunicorn.conf.py,
    # controlpanel/celery.py): what start-up loaded is kept out of the collector's way.
    gc.freeze()
    return redis_server


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def rss_kb(pid: int) -> int | None:
    """The process's resident size (``VmRSS``) in KiB; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def children(pid: int) -> list[int]:
    """The process's children (a Celery worker's pool processes), by their parent in /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: the command may hold spaces, so split after its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def raise_limits(**overrides) -> None:
    """Raises the global risk limits out of a benchmark's way (every signal is decided on its
    merits, none denied for volume, exposure, loss or drawdown); ``overrides`` set others."""
    from decimal import Decimal

    from trading.risk.services import global_limits

    limits = global_limits()
    limits.max_orders_per_minute = 1_000_000
    limits.max_position_notional = Decimal("1000000000")
    limits.max_total_exposure = Decimal("1000000000")
    limits.max_open_positions = 100
    limits.daily_loss_limit = Decimal("1000000000")
    limits.max_drawdown = Decimal("1")
    for field, value in overrides.items():
        setattr(limits, field, value)
    limits.save()
