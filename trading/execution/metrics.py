"""exec-risk's metrics, named by the original spec. Counters are recorded where things happen;
the gauges describing the book are computed from the database when the page is scraped."""

from __future__ import annotations

from enum import StrEnum

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily

from trading.observability.metrics import LATENCY_BUCKETS, Kind, declare, scrape_collector
from trading.risk.reasons import AlertReason, Reason

S = "exec-risk"


class ExecutionError(StrEnum):
    """What became of an order the exchange refused or did not clearly answer."""

    RETRYABLE = "retryable"  # sent again after a pause
    AMBIGUOUS = "ambiguous"  # the exchange may have it: reconciled before anything else
    REJECTED = "rejected"  # refused for good


def _symbols() -> list[str]:
    return list(settings.SYMBOLS)


ORDERS_EXECUTED = declare(
    S, "exec_risk_service_orders_executed_total", Kind.COUNTER, "Orders completely filled"
)
POSITIONS_OPENED = declare(
    S, "exec_risk_service_positions_opened_total", Kind.COUNTER, "Positions opened"
)
POSITIONS_CLOSED = declare(
    S, "exec_risk_service_positions_closed_total", Kind.COUNTER, "Positions closed"
)
RISK_ALERTS = declare(
    S,
    "exec_risk_service_risk_alerts_total",
    Kind.COUNTER,
    "Risk alerts raised (limit breaches that change the trading state, books that disagree)",
    {"reason": AlertReason},
)
EMERGENCY_STOPS = declare(
    S, "exec_risk_service_emergency_stops_total", Kind.COUNTER, "Times trading was halted"
)
EXECUTION_ERRORS = declare(
    S,
    "exec_risk_service_execution_errors_total",
    Kind.COUNTER,
    "Orders the exchange refused or that failed to reach it",
    {"kind": ExecutionError},
)
ORDERS_DENIED = declare(
    S,
    "exec_risk_service_orders_denied_total",
    Kind.COUNTER,
    "Orders denied by the pre-trade checks, by reason code",
    {"reason": Reason},
)
FILLS = declare(
    S, "exec_risk_service_fills_total", Kind.COUNTER, "Fills recorded", {"symbol": _symbols}
)
ORDER_LATENCY = declare(
    S,
    "exec_risk_service_order_latency_seconds",
    Kind.HISTOGRAM,
    "From the signal's arrival to its order's first answer from the exchange",
    (),
    LATENCY_BUCKETS,
)
RPC_TIMEOUTS = declare(
    S,
    "exec_risk_service_rpc_timeouts_total",
    Kind.COUNTER,
    "Calls to exec-risk that did not answer within their deadline",
    ("task",),
)


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
