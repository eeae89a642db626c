"""exec-risk's own checks on its health page: exchange, symbol rules, market data, the book."""

from __future__ import annotations

import json
import time

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily

from trading.marketdata.health import market_data_check
from trading.models import Symbol
from trading.observability.health import Check, Status, service_check
from trading.observability.metrics import scrape_collector
from trading.store import redis_probe_client, rkey

S = "exec-risk"
EXCHANGE_STATUS_MAX_AGE = 120.0


def record_exchange_status(venue: str, ok: bool, error: str = "") -> None:
    """Written by exec-risk workers after talking to the exchange; read by the health page."""
    from trading.store import redis_client

    redis_client().set(
        rkey("exchange", "status"),
        json.dumps({"venue": venue, "ok": ok, "error": error, "checked_at": time.time()}),
        ex=int(EXCHANGE_STATUS_MAX_AGE * 2),
    )


@service_check(S)
def exchange() -> Check:
    if settings.EXCHANGE == "paper":
        # The paper exchange's book is in Redis: it answers when Redis does.
        redis_probe_client().ping()
        return Check("exchange", Status.PASS, observed={"venue": "paper"})
    raw = redis_probe_client().get(rkey("exchange", "status"))
    if raw is None:
        return Check("exchange", Status.FAIL, "no exec-risk worker has reached the exchange yet",
                     {"venue": settings.EXCHANGE})  # fmt: skip
    status = json.loads(raw)
    age = time.time() - status["checked_at"]
    observed = {"venue": status["venue"], "checked_seconds_ago": round(age, 1)}
    if not status["ok"]:
        return Check("exchange", Status.FAIL, status["error"] or "unreachable", observed)
    if age > EXCHANGE_STATUS_MAX_AGE:
        return Check("exchange", Status.FAIL, "the last exchange check is too old", observed)
    return Check("exchange", Status.PASS, observed=observed)


@service_check(S)
def symbol_rules() -> Check:
    rows = list(Symbol.objects.values_list("symbol", "source", "refreshed_at"))
    if not rows:
        from trading.marketdata.services import refresh_symbol_rules

        refresh_symbol_rules()
        rows = list(Symbol.objects.values_list("symbol", "source", "refreshed_at"))
    missing = sorted(set(settings.SYMBOLS) - {r[0] for r in rows})
    observed = {"symbols": len(rows), "source": sorted({r[1] for r in rows})}
    if missing:
        return Check("symbol_rules", Status.FAIL, "no rules for " + ", ".join(missing), observed)
    return Check("symbol_rules", Status.PASS, observed=observed)


@service_check(S)
def market_data() -> Check:
    # exec-risk can still reduce and flatten on stale prices: it only warns.
    return market_data_check(critical=False)


@service_check(S)
def book() -> Check:
    from trading.ledger import services as ledger
    from trading.marketdata.prices import latest_prices
    from trading.risk import services as risk

    account = risk.get_account()
    marks = latest_prices()
    state = risk.current_state(account)
    observed = {
        "trading_state": str(state),
        "open_positions": len(ledger.open_positions(account)),
        "daily_pnl": str(ledger.daily_pnl(account, marks)),
    }
    if state != "ACTIVE":
        return Check("trading", Status.WARN, f"trading is {state}", observed, critical=False)
    return Check("trading", Status.PASS, observed=observed, critical=False)


@scrape_collector(S)
def book_gauges():
    """Open positions, today's PnL and trades, the trading state and the daily loss limit, from
    the ledger and the risk limits: read at every scrape, so an alert comparing the PnL with the
    limit follows a limit edited in the admin."""
    from trading.ledger import services as ledger
    from trading.marketdata.prices import latest_prices
    from trading.models import TradingStateRecord
    from trading.risk import services

    account = services.get_account()
    marks = latest_prices()
    book = ledger.read_book(account, marks)
    positions = book.positions
    daily = book.daily_pnl
    state = TradingStateRecord.objects.get(account=account).state
    # The global row's, as apply_automatic_state halts the main account on it.
    loss_limit = services.global_limits().daily_loss_limit
    trading_state = GaugeMetricFamily(
        "exec_risk_service_trading_state",
        "1 for the current trading state of the main account",
        labels=["state"],
    )
    for choice in TradingStateRecord.State.values:
        trading_state.add_metric([choice], 1.0 if choice == state else 0.0)
    return [
        GaugeMetricFamily(
            "exec_risk_service_open_positions", "Open positions", value=len(positions)
        ),
        GaugeMetricFamily(
            "exec_risk_service_daily_pnl_usd",
            "PnL since 00:00 UTC: realized net of fees plus the change of unrealized, in USDT",
            value=float(daily),
        ),
        GaugeMetricFamily(
            "exec_risk_service_daily_trades",
            "Fills today (UTC)",
            value=ledger.daily_trades(account),
        ),
        GaugeMetricFamily(
            "exec_risk_service_daily_loss_limit_usd",
            "The daily loss limit: trading halts when today's PnL reaches minus this, in USDT",
            value=float(loss_limit),
        ),
        trading_state,
    ]
