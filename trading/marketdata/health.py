"""Market data freshness, as the services that trade on it report it."""

from __future__ import annotations

import time

from django.conf import settings

from trading.marketdata.prices import latest_quotes
from trading.observability.health import Check, Status
from trading.store import redis_probe_client


def market_data_check(*, critical: bool) -> Check:
    """Every configured symbol has a quote received within ``MARKET_DATA_MAX_AGE_SECONDS``.

    A critical check fails the service's readiness when not; otherwise it only warns."""
    quotes = latest_quotes(list(settings.SYMBOLS), client=redis_probe_client())
    now = time.time()
    ages = {s: round(q.age(now), 1) for s, q in quotes.items()}
    missing = sorted(set(settings.SYMBOLS) - set(quotes))
    stale = sorted(s for s, age in ages.items() if age > settings.MARKET_DATA_MAX_AGE_SECONDS)
    observed = {"age_seconds": ages}
    if missing or stale:
        problems = [*(f"{s}: no bars" for s in missing), *(f"{s}: stale" for s in stale)]
        status = Status.FAIL if critical else Status.WARN
        return Check("market_data", status, "; ".join(problems), observed, critical=critical)
    return Check("market_data", Status.PASS, observed=observed, critical=critical)
