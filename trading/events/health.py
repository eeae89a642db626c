"""The outbox's backlog on exec-risk's health and metrics pages: the relay hands exec-risk its
signals, so events waiting in the outbox are signals exec-risk has not been given. Read from the
database at each request or scrape. Not critical: exec-risk can still work on what it has,
so the backlog lowers its health, not its readiness."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from trading.events.outbox import backlog
from trading.observability.health import Check, Status, service_check
from trading.observability.metrics import scrape_collector

S = "exec-risk"
# The fast path publishes within milliseconds of a commit, and the relay loop looks every half
# second: a row waiting this long means Redis or the relay is down.
WARN_AGE_SECONDS = 10.0
FAIL_AGE_SECONDS = 60.0


@service_check(S)
def outbox() -> Check:
    waiting = backlog()
    observed = {"backlog": waiting.rows, "oldest_age_seconds": round(waiting.oldest_age_seconds, 1)}
    age = waiting.oldest_age_seconds
    if age > FAIL_AGE_SECONDS:
        return Check(
            "outbox", Status.FAIL, f"events unpublished for {age:.0f}s", observed, critical=False
        )
    if age > WARN_AGE_SECONDS:
        return Check(
            "outbox", Status.WARN, f"events unpublished for {age:.0f}s", observed, critical=False
        )
    return Check("outbox", Status.PASS, observed=observed, critical=False)


@scrape_collector(S)
def outbox_gauges():
    waiting = backlog()
    return [
        GaugeMetricFamily(
            "exec_risk_service_outbox_backlog",
            "Events written to the outbox and not yet published to the event log",
            value=waiting.rows,
        ),
        GaugeMetricFamily(
            "exec_risk_service_outbox_oldest_age_seconds",
            "Seconds the oldest unpublished outbox event has waited (0 when none)",
            value=waiting.oldest_age_seconds,
        ),
    ]
