"""The market feed's progress, on ai's metrics page: ai is the service that acts on every bar.

The feed is a process of its own, so it writes these to Redis like any worker (see
``trading.observability.metrics``) and the web process renders them.
"""

from __future__ import annotations

import redis

from trading.marketdata.bars import Bar
from trading.observability.metrics import Kind, declare

S = "ai"

BARS_PUBLISHED = declare(
    S, "ai_service_feed_bars_published_total", Kind.COUNTER, "Closed bars the market feed published"
)
LAST_BAR_CLOSE = declare(
    S,
    "ai_service_feed_last_bar_close_timestamp_seconds",
    Kind.GAUGE,
    "Close time of the last bar the market feed published (the replay position when replaying)",
)
LAST_PUBLISH = declare(
    S,
    "ai_service_feed_last_publish_timestamp_seconds",
    Kind.GAUGE,
    "Wall-clock time the market feed last published a step of bars",
)
REDIS_OUTAGES = declare(
    S,
    "ai_service_feed_redis_outages_total",
    Kind.COUNTER,
    "Times the market feed found Redis unavailable and waited for it",
)


def record_feed_progress(bars: list[Bar], now: float, *, client: redis.Redis) -> None:
    """Counts a published step and moves the position gauges, in one round trip."""
    pipe = client.pipeline(transaction=True)
    BARS_PUBLISHED.inc(len(bars), client=pipe)
    LAST_BAR_CLOSE.set(max(bar.close_time for bar in bars).timestamp(), client=pipe)
    LAST_PUBLISH.set(now, client=pipe)
    pipe.execute()
