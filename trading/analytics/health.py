"""analytics' own checks: the platform as it sees it, the portfolio, the learning loop."""

from __future__ import annotations

import json

from prometheus_client.core import GaugeMetricFamily

from trading.observability.health import Check, Status, service_check
from trading.observability.metrics import scrape_collector
from trading.observability.services import SERVICES
from trading.store import redis_probe_client, rkey


@service_check("analytics")
def platform() -> Check:
    """What the last supervision sweep found; a degraded service warns here."""
    client = redis_probe_client()
    conditions = {}
    for name in SERVICES:
        raw = client.get(rkey("supervision", name))
        conditions[name] = json.loads(raw) if raw else None
    degraded = sorted(n for n, c in conditions.items() if c and c.get("degraded"))
    observed = {
        name: ("unchecked" if c is None else "degraded" if c.get("degraded") else "healthy")
        for name, c in conditions.items()
    }
    if degraded:
        return Check("platform", Status.WARN, "degraded: " + ", ".join(degraded), observed,
                     critical=False)  # fmt: skip
    return Check("platform", Status.PASS, observed=observed, critical=False)


@service_check("analytics")
def portfolio() -> Check:
    from trading.models import PerformanceSnapshot

    latest = PerformanceSnapshot.objects.first()
    if latest is None:
        return Check("portfolio", Status.PASS, "no snapshot yet", critical=False)
    return Check(
        "portfolio",
        Status.PASS,
        observed={
            "equity": str(latest.equity),
            "open_positions": latest.open_positions,
            "closed_trades": latest.closed_trades,
            "win_rate": latest.win_rate,
            "max_drawdown": latest.max_drawdown,
            "at": latest.ts.isoformat(),
        },
        critical=False,
    )


@service_check("analytics")
def learning() -> Check:
    from trading.analytics.services import learning_state

    state = learning_state()
    return Check("learning", Status.PASS, observed={"model_versions": state}, critical=False)


@scrape_collector("analytics")
def portfolio_gauges():
    """Portfolio value and open positions of the main account, from the ledger."""
    from trading.ledger import services as ledger
    from trading.marketdata.prices import latest_prices
    from trading.risk import services as risk

    book = ledger.read_book(risk.get_account(), latest_prices())
    return [
        GaugeMetricFamily(
            "analytics_os_service_portfolio_value_usd",
            "Equity of the main account: cash plus positions at their marks, in USDT",
            value=float(book.equity),
        ),
        GaugeMetricFamily(
            "analytics_os_service_positions_count",
            "Open positions of the main account",
            value=len(book.positions),
        ),
    ]
