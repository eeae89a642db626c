"""Which events tell operators what, which channels hear it, and how a storm becomes one message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trading.notifications.kinds import Kind, Severity
from trading.notifications.notices import (
    Waiting,
    channel_wants,
    compose,
    notice_for_event,
    notices_for_alertmanager,
    window_open,
)
from trading.notifications.transport import masked_url, scrub

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_an_operator_halt_says_who_and_why_and_is_critical():
    notice = notice_for_event(
        "risk.state_changed",
        {"from": "ACTIVE", "to": "HALTED", "actor": "olivia", "reason": "exchange outage",
         "flatten": True},
    )  # fmt: skip
    assert notice.kind is Kind.TRADING_STATE
    assert notice.severity is Severity.CRITICAL
    assert "olivia" in notice.title and "flattening" in notice.title
    assert "exchange outage" in notice.body


def test_the_daily_loss_limit_halting_is_a_limit_notice_not_an_operator_action():
    notice = notice_for_event(
        "risk.state_changed",
        {"from": "ACTIVE", "to": "HALTED", "actor": "system:DAILY_LOSS_LIMIT", "reason": "x"},
    )
    assert notice.kind is Kind.RISK_LIMIT
    assert notice.title.startswith("DAILY_LOSS_LIMIT")


def test_a_passed_selftest_run_and_unrelated_events_tell_nobody():
    assert notice_for_event("selftest.finished", {"status": "passed"}) is None
    assert notice_for_event("market.bar", {"symbol": "BTCUSDT"}) is None
    failed = notice_for_event("selftest.finished", {"status": "failed", "failed": 2})
    assert failed.kind is Kind.SELFTEST_FAILED and "2 failed" in failed.body


def test_a_storm_of_denials_is_one_message_with_the_reason_counts():
    waiting = [
        Waiting("orders.denied", "warning", f"Order denied {i}", "", reason)
        for i, reason in enumerate(["LOW_CONFIDENCE"] * 60 + ["MAX_LEVERAGE"] * 40)
    ]
    message = compose(waiting)
    assert message.notices == 100
    assert message.title.startswith("100 order denials")
    assert "LOW_CONFIDENCE: 60" in message.body and "MAX_LEVERAGE: 40" in message.body


def test_one_waiting_notice_goes_out_as_it_is():
    message = compose([Waiting("service.degraded", "critical", "ai degraded", "no worker", "")])
    assert (message.kind, message.title, message.body) == (
        "service.degraded",
        "ai degraded",
        "no worker",
    )


def test_a_channel_hears_its_kinds_at_or_above_its_severity():
    halt = notice_for_event("risk.state_changed", {"to": "HALTED", "actor": "olivia"})
    assert channel_wants([], "critical", halt)
    assert not channel_wants(["service.degraded"], "info", halt)
    recovered = notice_for_event("service.recovered", {"service": "ai"})
    assert not channel_wants([], "warning", recovered)


def test_the_window_opens_n_seconds_after_the_last_message():
    assert window_open(None, NOW, 60)
    assert not window_open(NOW - timedelta(seconds=59), NOW, 60)
    assert window_open(NOW - timedelta(seconds=60), NOW, 60)


def test_alertmanager_alerts_become_notices_firing_at_their_severity_resolved_as_info():
    notices = notices_for_alertmanager(
        {
            "version": "4",
            "status": "firing",
            "alerts": [
                {"status": "firing", "labels": {"alertname": "WorkerDown", "severity": "critical",
                 "job": "ai"}, "annotations": {"summary": "no ai worker"}},
                {"status": "resolved", "labels": {"alertname": "QueueBacklog",
                 "severity": "warning"}, "annotations": {}},
            ],
        }
    )  # fmt: skip
    assert [(n.severity, n.title) for n in notices] == [
        (Severity.CRITICAL, "[FIRING] WorkerDown: no ai worker"),
        (Severity.INFO, "[RESOLVED] QueueBacklog"),
    ]
    assert "job=ai" in notices[0].body


def test_channel_urls_are_shown_without_their_secrets():
    url = "tgram://123456:AAHsecretBotToken/-100987654"
    shown = masked_url(url)
    assert "AAHsecretBotToken" not in shown and shown.startswith("tgram://")
    assert "s3cretpass" not in masked_url("json://bob:s3cretpass@example.com/hook")
    assert "AAHsecretBotToken" not in scrub(f"failed at {url}: AAHsecretBotToken refused", url)


def test_a_promotion_and_a_rollback_name_who_and_which_versions():
    promoted = notice_for_event(
        "model.promoted",
        {"version": "m-2", "previous": "m-1", "actor": "olivia", "reason": "fresher data"},
    )
    assert promoted.kind == Kind.MODEL_PROMOTED
    assert promoted.title == "Model m-2 promoted by olivia"
    assert promoted.body == "fresher data (replacing m-1)"
    rolled = notice_for_event(
        "model.rolled_back",
        {"version": "m-1", "from_version": "m-2", "actor": "olivia", "reason": "worse live"},
    )
    assert rolled.kind == Kind.MODEL_ROLLED_BACK and rolled.severity == Severity.WARNING
    assert rolled.title == "Model rolled back from m-2 to m-1 by olivia"
    # A trained version is a challenger: training alone tells nobody it serves.
    assert notice_for_event("model.trained", {"version": "m-3"}) is None
