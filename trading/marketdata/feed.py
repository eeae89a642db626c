"""The market feed's publishing: each step goes out once, whole and in order, through Redis outages.

A step is published in stages: the bars become the latest quotes, their ``market.bar`` events are
appended to the event log, the feed's progress metrics move, the consumers are nudged, and the
database records the step as the feed's position. Each stage that fails because Redis does not
answer (restarting, loading its data, unreachable) is retried with back-off until it does, and the
stages after it follow; a done stage is not done again. So after an outage the feed carries on
with the step it was publishing: none skipped, none doubled. The events of a step are made once,
so a retried append carries the same event ids (consumers are idempotent by event id). The bars
also go into the bar store (``trading.marketdata.barstore``) before their events go out.

The outage is logged once when it starts and once when Redis answers again, not per retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import kombu.exceptions
import redis

from trading.events.log import publish_many
from trading.marketdata.bars import Bar
from trading.marketdata.barstore import purge_expired_bars, store_bars
from trading.marketdata.metrics import REDIS_OUTAGES, record_feed_progress
from trading.marketdata.prices import record_bars
from trading.marketdata.services import bar_events, notify_bar_consumers, record_feed_position
from trading.store import redis_client

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that say Redis (as store or as Celery's broker) cannot answer now but may soon:
# BusyLoadingError is a ConnectionError (Redis loading its data after a restart).
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)


# The bar store's retention is enforced once per this many steps (and on the first): a day of
# 5-minute bars.
PURGE_EVERY_STEPS = 288


class FeedStopped(Exception):
    """The feed was told to stop while it waited for Redis; the step was not (fully) published."""


@dataclass(frozen=True)
class Backoff:
    """Waits between retries: ``initial`` seconds, times ``factor`` each retry, at most
    ``maximum``, so a short blip costs little and a long outage is not hammered."""

    initial: float = 0.1
    factor: float = 2.0
    maximum: float = 5.0

    def delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0 for the first) of an outage."""
        return min(self.maximum, self.initial * self.factor ** min(retry, 64))


class FeedPublisher:
    """Publishes the feed's steps for ``source`` ("replay" or "binance").

    ``wait(seconds)`` waits and returns True when the feed should stop (``Event.wait``), so a
    stop request ends a wait for Redis at once with ``FeedStopped``.
    """

    def __init__(
        self,
        source: str,
        *,
        wait: Callable[[float], bool],
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.backoff = backoff or Backoff()
        self._wait = wait
        self._clock = clock
        self._outage_since: float | None = None
        self._retries = 0  # of the current outage
        self._outages_to_count = 0  # ended outages not yet counted in the metric
        self.outages = 0  # ended outages, for the caller to report
        self._stored_steps = 0

    def publish(self, bars: list[Bar]) -> None:
        """Publishes one step of closed bars and records it as the feed's position."""
        if not bars:
            return
        events = bar_events(bars)
        self.call(lambda: record_bars(bars))
        # In the bar store before the events go out: whoever acts on a bar finds it there.
        store_bars(bars, self.source)
        self._stored_steps += 1
        if self._stored_steps % PURGE_EVERY_STEPS == 1:
            purge_expired_bars()
        self.call(lambda: publish_many(events))
        self.call(lambda: record_feed_progress(bars, self._clock(), client=redis_client()))
        self.call(notify_bar_consumers)
        record_feed_position(self.source, bars)

    def call(self, action: Callable[[], T]) -> T:
        """Runs ``action`` until Redis lets it finish; raises FeedStopped when told to stop."""
        while True:
            try:
                result = action()
            except REDIS_UNAVAILABLE as error:
                self._failed(error)
                if self._wait(self.backoff.delay(self._retries)):
                    raise FeedStopped("stopped while waiting for Redis") from error
                self._retries += 1
                continue
            if self._outage_since is not None:
                self._recovered()
            if self._outages_to_count:
                self._count_outages()
            return result

    def _failed(self, error: Exception) -> None:
        if self._outage_since is None:
            self._outage_since = self._clock()
            logger.warning(
                "Redis unavailable (%s: %s); the feed waits for it and carries on with the "
                "same step",
                type(error).__name__,
                error,
            )

    def _recovered(self) -> None:
        assert self._outage_since is not None
        logger.warning(
            "Redis answers again after %.1f s and %d retries; the feed carries on",
            self._clock() - self._outage_since,
            self._retries,
        )
        self._outage_since = None
        self._retries = 0
        self.outages += 1
        self._outages_to_count += 1

    def _count_outages(self) -> None:
        try:
            REDIS_OUTAGES.inc(self._outages_to_count)
        except REDIS_UNAVAILABLE:
            return  # Redis is gone again: counted after a later call that succeeds
        self._outages_to_count = 0
