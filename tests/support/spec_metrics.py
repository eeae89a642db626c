"""The metric names the original spec lists, read from the spec itself when it is beside the
repository, else from the copy below (kept equal to the spec by tests/unit/observability)."""

from __future__ import annotations

import re

from tests.support.processes import ROOT
from trading.observability.services import SERVICES, Service

SPEC = ROOT.parent / "shared" / "spec" / "original-spec.md"

# A line holding just one name, as the spec's lists and code blocks give them: "- `name`", "name".
_LISTED = re.compile(
    r"^\s*(?:-\s*)?`?((?:{})_[a-z0-9_]+)`?\s*$".format(
        "|".join(re.escape(s.metric_prefix) for s in SERVICES.values())
    ),
    re.MULTILINE,
)

COPY = frozenset({
    "ai_service_uptime_seconds",
    "ai_service_signals_generated_total",
    "ai_service_predictions_made_total",
    "ai_service_events_published_total",
    "ai_service_errors_total",
    "exec_risk_service_uptime_seconds",
    "exec_risk_service_orders_executed_total",
    "exec_risk_service_positions_opened_total",
    "exec_risk_service_positions_closed_total",
    "exec_risk_service_risk_alerts_total",
    "exec_risk_service_emergency_stops_total",
    "exec_risk_service_execution_errors_total",
    "exec_risk_service_open_positions",
    "exec_risk_service_daily_pnl_usd",
    "exec_risk_service_daily_trades",
    "analytics_os_service_uptime_seconds",
    "analytics_os_service_events_received_total",
    "analytics_os_service_health_checks_total",
    "analytics_os_service_auto_restarts_total",
    "analytics_os_service_rebalances_executed_total",
    "analytics_os_service_profit_amplifications_total",
    "analytics_os_service_retrainings_triggered_total",
    "analytics_os_service_portfolio_value_usd",
    "analytics_os_service_positions_count",
    "analytics_os_service_drift_detected",
})  # fmt: skip


def names_in(text: str) -> frozenset[str]:
    """The metric names a spec text lists, one to a line."""
    return frozenset(_LISTED.findall(text))


def spec_metric_names() -> frozenset[str]:
    return names_in(SPEC.read_text()) if SPEC.exists() else COPY


def service_of(name: str) -> Service:
    """The service whose metrics page must export the name."""
    (service,) = [s for s in SERVICES.values() if name.startswith(s.metric_prefix + "_")]
    return service
