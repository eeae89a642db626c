"""gunicorn's settings for the web process: plain HTTP (pages, admin, API, health, ready and
metrics) through ``controlpanel.wsgi``. The dashboard's websocket is served beside it by uvicorn
on ``WS_PORT`` (``controlpanel.asgi``).

Environment: ``HOST`` and ``PORT`` (127.0.0.1:8000), ``QT_WEB_WORKERS`` (2: one per core of a
laptop; each is a process with its own database connection) and ``QT_WEB_TIMEOUT`` (30 s: a
worker stuck that long on one request is replaced).

    python -m gunicorn -c deploy/gunicorn.conf.py controlpanel.wsgi:application
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from controlpanel.env import env_int

_host = os.environ.get("HOST") or "127.0.0.1"
_port = env_int("PORT", 8000, minimum=1, maximum=65535)
bind = [f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"]  # IPv6 in brackets
workers = env_int("QT_WEB_WORKERS", 2, minimum=1, maximum=64)
# Sync workers: one request at a time per process, no thread hop between middleware and view.
worker_class = "sync"
timeout = env_int("QT_WEB_TIMEOUT", 30, minimum=5, maximum=3600)
graceful_timeout = 5
# Room for a burst of connections (a thousand readiness probes at once) to wait their turn.
backlog = 2048
accesslog = None
errorlog = "-"
# Requests are logged by Django and counted by django-prometheus; proxies may set these headers.
forwarded_allow_ips = os.environ.get("QT_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# The workers' metrics: each worker writes its samples to files in a directory of this server's
# own and /metrics adds them up, so a scrape sees the whole server whichever worker answers it.
# Set before the workers start (they inherit it) and emptied when the server starts.
_var_dir = Path(os.environ.get("QT_VAR_DIR") or Path(__file__).resolve().parents[1] / "var")


def on_starting(server) -> None:
    address = re.sub(r"[^0-9A-Za-z.]+", "-", server.cfg.bind[0]).strip("-")
    metrics_dir = Path(
        os.environ.get("PROMETHEUS_MULTIPROC_DIR") or _var_dir / "run" / f"prometheus-{address}"
    )
    metrics_dir.mkdir(parents=True, exist_ok=True)
    for stale in metrics_dir.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)


def child_exit(server, worker) -> None:
    # Imported here: prometheus_client picks its value store when first imported, and the
    # workers forked from this process must pick the multiprocess one.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker) -> None:
    # The application a worker has loaded lives as long as it does: kept out of the collector's
    # way, a full collection no longer walks it (about 100 ms, in the middle of a request).
    import gc

    gc.freeze()
