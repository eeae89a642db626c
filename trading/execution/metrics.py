"""exec-risk's metrics, named by the original spec, recorded where things happen. The gauges
describing the book are computed when the page is scraped, beside the health checks that read
the same book (``trading.execution.health``)."""

from __future__ import annotations

from enum import StrEnum

from django.conf import settings

from trading.observability.metrics import LATENCY_BUCKETS, Kind, declare
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
LIQUIDATIONS = declare(
    S,
    "exec_risk_service_liquidations_total",
    Kind.COUNTER,
    "Futures positions liquidated: margin balance below the maintenance margin",
    {"symbol": _symbols},
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
