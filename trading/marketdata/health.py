"""Market data freshness, as the services that trade on it report it.

A quote is stale when it was received more than ``STALE_AFTER_INTERVALS`` bar intervals ago: the
expected interval is the wall time between bars, ``QT_REPLAY_BAR_SECONDS`` for a replay and the
kline interval (5 minutes by default) live. So a feed that stopped shows within a few missed bars
whatever its pace. The threshold never goes below ``MIN_STALE_SECONDS``: a replay at 0 s per bar
(as fast as possible), or at a fraction of a second, would otherwise flap on any pause of a second
or two of the feed (a slow database write, a busy machine) that costs no trading.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from django.conf import settings

from trading.marketdata.bars import interval_length
from trading.marketdata.prices import Quote, latest_quotes
from trading.observability.health import Check, Status
from trading.store import redis_probe_client

STALE_AFTER_INTERVALS = 3
MIN_STALE_SECONDS = 10.0


def expected_bar_seconds() -> float:
    """Wall seconds between two bars of the configured feed."""
    if settings.MARKET_DATA_SOURCE == "replay":
        return float(settings.REPLAY_BAR_SECONDS)
    return interval_length(settings.KLINE_INTERVAL).total_seconds()


def stale_after_seconds(bar_seconds: float) -> float:
    """The age past which a quote is stale, for bars ``bar_seconds`` apart."""
    return max(MIN_STALE_SECONDS, STALE_AFTER_INTERVALS * bar_seconds)


def judge_market_data(
    quotes: Mapping[str, Quote],
    symbols: Iterable[str],
    *,
    bar_seconds: float,
    now: float,
    critical: bool,
) -> Check:
    """Every symbol has a quote received within ``stale_after_seconds(bar_seconds)`` of ``now``.

    A critical check fails the service's readiness when not; otherwise it only warns."""
    limit = stale_after_seconds(bar_seconds)
    ages = {s: round(q.age(now), 1) for s, q in quotes.items()}
    missing = sorted(set(symbols) - set(quotes))
    stale = sorted(s for s, age in ages.items() if age > limit)
    observed = {"age_seconds": ages, "stale_after_seconds": limit}
    if missing or stale:
        problems = [
            *(f"{s}: no bars" for s in missing),
            *(f"{s}: stale ({ages[s]:.0f} s old, limit {limit:g} s)" for s in stale),
        ]
        status = Status.FAIL if critical else Status.WARN
        return Check("market_data", status, "; ".join(problems), observed, critical=critical)
    return Check("market_data", Status.PASS, observed=observed, critical=critical)


def market_data_check(*, critical: bool) -> Check:
    """``judge_market_data`` on the configured symbols' latest quotes, now."""
    symbols = list(settings.SYMBOLS)
    quotes = latest_quotes(symbols, client=redis_probe_client())
    return judge_market_data(
        quotes, symbols, bar_seconds=expected_bar_seconds(), now=time.time(), critical=critical
    )
