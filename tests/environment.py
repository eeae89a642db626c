"""Loaded by pytest before Django (``-p tests.environment``): points the settings at a test
Redis server on a free port and at a private var directory, so a test run never touches the data
of a platform running on the same machine. The ``redis_server`` fixture starts that server."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from deploy.redis_server import free_port

VAR_DIR = Path(tempfile.mkdtemp(prefix="qt-test-"))
REDIS_PORT = free_port()
# The web server the tests start listens here, so that every process (the analytics worker
# running the system checks too) knows where to reach it.
WEB_PORT = free_port()
# ... and the dashboard's websocket server here.
WS_PORT = free_port()
# Telegram's Bot API, for every process: a local stand-in (tests/support/http_receivers.py) may
# listen here; nothing a test starts ever reaches Telegram's own servers.
TELEGRAM_API_PORT = free_port()

os.environ.update(
    DJANGO_SETTINGS_MODULE="controlpanel.settings",
    DJANGO_DEBUG="false",
    DJANGO_SECRET_KEY="test-secret-key-that-is-long-enough-for-the-settings-check",
    QT_VAR_DIR=str(VAR_DIR),
    REDIS_URL=f"redis://127.0.0.1:{REDIS_PORT}/0",
    QT_REDIS_PREFIX="qt",
    # Fast beats so that a dead worker shows within a few seconds.
    QT_HEARTBEAT_INTERVAL="0.5",
    QT_HEARTBEAT_EXPIRY="3",
    # Every health and ready request computes its answer (tests/integration covers the reuse).
    QT_HEALTH_CACHE_SECONDS="0",
    QT_SELFTEST_BASE_URL=f"http://127.0.0.1:{WEB_PORT}",
    PORT=str(WEB_PORT),
    WS_PORT=str(WS_PORT),
    QT_TELEGRAM_API_URL=f"http://127.0.0.1:{TELEGRAM_API_PORT}/bot",
)
os.environ.pop("DATABASE_URL", None)
(VAR_DIR / "static").mkdir()
