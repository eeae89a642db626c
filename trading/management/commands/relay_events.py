"""The outbox relay loop: publishes whatever the fast path after each commit left behind (Redis
was down, a relay died before marking its rows); rows younger than
``outbox.LOOP_GRACE_SECONDS`` are left to their fast path."""

from __future__ import annotations

import logging
import signal
import threading
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from trading.events import outbox

logger = logging.getLogger(__name__)

# How often the loop looks for rows the fast path left (Redis was down, a relay died).
POLL_SECONDS = 0.5
PRUNE_EVERY_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 10.0


class Command(BaseCommand):
    help = "Relay the event outbox to the event log, until stopped."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="publish what waits now, then exit")

    def handle(self, *args, once: bool = False, **options) -> None:
        if once:
            self.stdout.write(f"published {outbox.relay()} events")
            return
        stop = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stop.set())
        backoff = POLL_SECONDS
        next_prune = 0.0
        while not stop.is_set():
            close_old_connections()
            try:
                outbox.relay(older_than=outbox.LOOP_GRACE_SECONDS)
                if time.monotonic() >= next_prune:
                    outbox.prune_published()
                    next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                backoff = POLL_SECONDS
            except Exception as error:  # Redis or the database away: wait, and try again
                logger.warning("outbox relay failed, retrying in %.1fs: %s", backoff, error)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            stop.wait(backoff)
