"""Notifications end to end: events of the log and Alertmanager's alerts reach a local webhook
through apprise, grouped per channel; failures are recorded and counted; secrets stay masked."""

from __future__ import annotations

import html
import logging
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from controlpanel.celery import app
from tests.conftest import start_workers
from tests.integration.notifications.conftest import TELEGRAM_CHAT
from tests.support.processes import wait_for
from trading.analytics.supervision import sweep
from trading.events.consumer import ensure_group
from trading.events.envelope import new_event
from trading.events.log import publish_many
from trading.events.replay import read_window
from trading.models import Notification, NotificationChannel, NotificationDelivery
from trading.notifications.consumers import GROUP
from trading.notifications.services import DISPATCH_TASK, dispatch_notifications, send_test
from trading.notifications.tasks import deliver_notifications
from trading.store import redis_client

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "alertmanager-test-token-0123456789"


def messages(receiver, count: int, what: str) -> list[dict]:
    return wait_for(
        lambda: receiver.received if len(receiver.received) >= count else None, 20, what
    )


def failed_total(client, channel_kind: str) -> float:
    text = client.get("/metrics").content.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "quantum_trader_notifications_failed_total" and sample.labels == {
                "channel_kind": channel_kind
            }:
                return sample.value
    return 0.0


def telegram_messages(telegram, count: int, what: str) -> list[dict]:
    return wait_for(lambda: telegram.sent if len(telegram.sent) >= count else None, 20, what)


def test_a_halt_from_the_api_is_one_message_in_the_webhook_and_in_telegram(
    service_workers, channel, receiver, telegram_channel, telegram, olivia
):
    api = APIClient()
    api.force_authenticate(olivia)
    response = api.post("/api/v1/risk/halt", {"reason": "exchange maintenance"}, format="json")
    assert response.status_code == 200, response.content

    # The analytics worker reads the log and sends, as its schedule does every few seconds.
    app.send_task(DISPATCH_TASK, queue="analytics")
    [message] = messages(receiver, 1, "the halt's notification")
    assert "ACTIVE -> HALTED by olivia" in message["body"]["title"]
    assert "exchange maintenance" in message["body"]["message"]
    [sent] = telegram_messages(telegram, 1, "the halt's message in Telegram")
    assert int(sent["chat_id"]) == TELEGRAM_CHAT
    text = html.unescape(sent["text"])
    assert "ACTIVE -> HALTED by olivia" in text and "exchange maintenance" in text

    deliver_notifications()  # nothing more to send: the halt went out once
    assert (len(receiver.received), len(telegram.sent)) == (1, 1)
    deliveries = NotificationDelivery.objects.order_by("channel__name")
    assert [(d.channel, d.kind, d.ok, d.notices) for d in deliveries] == [
        (telegram_channel, "trading.state_changed", True, 1),
        (channel, "trading.state_changed", True, 1),
    ]


def test_a_storm_of_100_denials_from_the_api_is_one_grouped_message_per_channel(
    service_workers, market, channel, receiver, telegram_channel, telegram, olivia
):
    api = APIClient()
    api.force_authenticate(olivia)
    start = timezone.now()
    body = {"symbol": "BTCUSDT", "side": "BUY", "confidence": 0.5, "notional": "100"}
    for _ in range(100):
        response = api.post("/api/v1/signals", body, format="json")
        assert response.status_code == 202, response.content

    def denials():
        found = read_window(types=["order.denied"], since=start, limit=1000)
        return found if len(found) >= 100 else None

    # exec-risk denies each; then the analytics worker reads the log and sends.
    denied = wait_for(denials, 120, "exec-risk to deny the 100 signals")
    assert {event.payload["reason"] for _id, event in denied} == {"LOW_CONFIDENCE"}
    app.send_task(DISPATCH_TASK, queue="analytics")

    [message] = messages(receiver, 1, "the storm's notification")
    assert message["body"]["title"].startswith("100 order denials")
    assert "LOW_CONFIDENCE: 100" in message["body"]["message"]
    [sent] = telegram_messages(telegram, 1, "the storm's message in Telegram")
    assert int(sent["chat_id"]) == TELEGRAM_CHAT
    text = html.unescape(sent["text"])
    assert "100 order denials" in text and "LOW_CONFIDENCE: 100" in text

    deliver_notifications()  # within the window: nothing more goes out
    assert (len(receiver.received), len(telegram.sent)) == (1, 1)
    assert [d.notices for d in NotificationDelivery.objects.all()] == [100, 100]


def test_a_storm_of_100_denial_events_is_one_grouped_message(channel, receiver):
    reasons = ["LOW_CONFIDENCE"] * 60 + ["MAX_LEVERAGE"] * 40
    publish_many(
        new_event(
            "order.denied",
            {"symbol": "BTCUSDT", "side": "BUY", "reason": reason, "detail": ""},
            service="exec-risk",
        )
        for reason in reasons
    )
    deliver_notifications()
    deliver_notifications()  # within the window: nothing more goes out

    [message] = receiver.received
    assert message["body"]["title"].startswith("100 order denials")
    assert "LOW_CONFIDENCE: 60" in message["body"]["message"]
    assert "MAX_LEVERAGE: 40" in message["body"]["message"]
    assert NotificationDelivery.objects.get(channel=channel).notices == 100


def test_events_after_a_message_wait_for_the_window_then_go_as_one(channel, receiver, settings):
    settings.NOTIFY_WINDOW_SECONDS = 0.5
    degraded = new_event("service.degraded", {"service": "ai", "problems": ["no worker"]},
                         service="analytics")  # fmt: skip
    publish_many([degraded])
    deliver_notifications()
    assert [m["body"]["title"] for m in receiver.received] == ["ai degraded"]

    publish_many(
        new_event("service.recovered", {"service": s, "problems": []}, service="analytics")
        for s in ("ai", "exec-risk")
    )
    wait_for(lambda: deliver_notifications()["sent"].get("sent"), 10, "the window to open")
    assert len(receiver.received) == 2
    assert receiver.received[1]["body"]["title"].startswith("2 services recovered")


def test_the_test_action_sends_one_message(admin_client, channel, receiver):
    response = admin_client.post(
        "/admin/trading/notificationchannel/",
        {"action": "send_test_message", "_selected_action": [channel.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Test sent to desk webhook" in response.content.decode()
    [message] = receiver.received
    assert "test of desk webhook" in message["body"]["title"]
    assert NotificationDelivery.objects.get(channel=channel, kind="test").ok is True


def test_a_failed_delivery_is_recorded_and_counted(client, notifications_group, caplog):
    from tests.support.http_receivers import WebhookReceiver

    with WebhookReceiver(status=500) as broken:
        url = f"json://desk:hunter2-secret@127.0.0.1:{broken.port}/hook"
        channel = NotificationChannel.objects.create(name="broken", url=url)
        before = failed_total(client, "json")
        with caplog.at_level(logging.WARNING):
            delivery = send_test(channel, "olivia")
    assert delivery.ok is False
    assert "500" in delivery.error
    assert failed_total(client, "json") == before + 1
    assert "hunter2-secret" not in delivery.error + caplog.text


def test_channel_secrets_are_masked_in_the_admin(admin_client, notifications_group):
    channel = NotificationChannel.objects.create(
        name="ops telegram", url="tgram://123456:AAHsecretBotToken/-100987654"
    )
    pages = [
        admin_client.get("/admin/trading/notificationchannel/"),
        admin_client.get(f"/admin/trading/notificationchannel/{channel.pk}/change/"),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert "AAHsecretBotToken" not in html
        assert "tgram://" in html

    # Saving the form with the URL left blank keeps the stored one.
    response = admin_client.post(
        f"/admin/trading/notificationchannel/{channel.pk}/change/",
        {"name": "ops telegram", "url": "", "min_severity": "warning", "enabled": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel.refresh_from_db()
    assert channel.url.endswith("AAHsecretBotToken/-100987654")
    assert channel.min_severity == "warning"


def test_alertmanager_alerts_become_notifications(
    service_workers, client, channel, receiver, settings
):
    settings.ALERTMANAGER_TOKEN = TOKEN
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "quantum-trader",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "ExecRiskWorkerDown", "severity": "critical"},
                "annotations": {"summary": "no exec-risk worker is alive"},
                "startsAt": "2026-03-01T12:00:00Z",
            }
        ],
    }
    url = "/api/v1/alerts/alertmanager"
    assert client.post(url, body, content_type="application/json").status_code == 401
    wrong = {"HTTP_AUTHORIZATION": "Bearer not-the-token"}
    assert client.post(url, body, content_type="application/json", **wrong).status_code == 401

    right = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    # Refused before the method or the body is looked at.
    assert client.get(url).status_code == 401
    with override_settings(ALERTMANAGER_TOKEN=""):
        off = client.post(url, body, content_type="application/json", **right)
        assert off.status_code == 401 and "not set" in off.json()["detail"]
    response = client.post(url, body, content_type="application/json", **right)
    assert response.status_code == 202, response.content
    # The webhook asks an analytics worker to send at once.
    [message] = messages(receiver, 1, "the alert's notification")
    assert message["body"]["title"] == "[FIRING] ExecRiskWorkerDown: no exec-risk worker is alive"


def test_viewers_see_channels_masked_and_deliveries_but_send_nothing(
    client, victor, channel, receiver, notifications_group
):
    victor.is_staff = True
    victor.save(update_fields=["is_staff"])
    client.force_login(victor)
    secret = NotificationChannel.objects.create(
        name="ops telegram", url="tgram://123456:AAHsecretBotToken/-100987654"
    )
    send_test(channel, "olivia")
    pages = {
        "channels": client.get("/admin/trading/notificationchannel/"),
        "channel": client.get(f"/admin/trading/notificationchannel/{secret.pk}/change/"),
        "deliveries": client.get("/admin/trading/notificationdelivery/"),
    }
    assert {name: page.status_code for name, page in pages.items()} == dict.fromkeys(pages, 200)
    for page in pages.values():
        assert "AAHsecretBotToken" not in page.content.decode()
    assert "tgram://" in pages["channel"].content.decode()
    assert "test of desk webhook" in pages["deliveries"].content.decode()
    assert "send_test_message" not in pages["channels"].content.decode()

    response = client.post(
        "/admin/trading/notificationchannel/",
        {"action": "send_test_message", "_selected_action": [channel.pk]},
    )
    assert response.status_code in (200, 302, 403)
    assert len(receiver.received) == 1  # only the operator's test above went out
    edit = {"name": "renamed", "url": "", "min_severity": "info", "enabled": "on"}
    assert (
        client.post(f"/admin/trading/notificationchannel/{secret.pk}/change/", edit).status_code
        == 403
    )
    secret.refresh_from_db()
    assert secret.name == "ops telegram"


def test_deliveries_are_pruned_after_the_retention_with_what_they_held(channel, receiver, settings):
    now = timezone.now()

    def delivered(days_ago: int) -> NotificationDelivery:
        at = now - timedelta(days=days_ago)
        delivery = NotificationDelivery.objects.create(
            channel=channel, sent_at=at, kind="orders.denied", title="t", message="m", ok=True
        )
        Notification.objects.create(
            channel=channel, kind="orders.denied", severity="warning", title="t",
            created_at=at, delivery=delivery,
        )  # fmt: skip
        return delivery

    kept, fresh = delivered(29), delivered(3)
    delivered(31)
    assert dispatch_notifications(now)["pruned"] == 1
    assert set(NotificationDelivery.objects.all()) == {kept, fresh}
    # Delivered notifications go after a week; none is left waiting to be sent again.
    assert [n.delivery for n in Notification.objects.all()] == [fresh]
    assert receiver.received == []

    # A delivery pruned within the week goes with its notifications, not leaving them waiting.
    settings.NOTIFY_RETENTION_DAYS = 2
    assert dispatch_notifications(now)["pruned"] == 2
    assert (NotificationDelivery.objects.count(), Notification.objects.count()) == (0, 0)
    assert receiver.received == []


SUPERVISED_DB = 12


@pytest.fixture
def supervised(settings, process_env, redis_server):
    """A Redis database of its own, which no worker serves until the test starts one."""
    url = f"redis://127.0.0.1:{redis_server.port}/{SUPERVISED_DB}"
    settings.REDIS_URL = url
    redis_client().flushdb()
    ensure_group(redis_client(), GROUP, start="$")
    yield {**process_env, "REDIS_URL": url}
    redis_client().flushdb()


def test_supervision_tells_the_channels_of_degraded_then_recovered_services(
    supervised, receiver, telegram, settings
):
    settings.NOTIFY_WINDOW_SECONDS = 0.5
    NotificationChannel.objects.create(name="desk webhook", url=receiver.url())
    NotificationChannel.objects.create(
        name="desk telegram", url=f"tgram://123456:stand-in-bot-token/{TELEGRAM_CHAT}"
    )
    assert all(result["degraded"] for result in sweep().values())  # no worker at all
    deliver_notifications()
    [degraded] = receiver.received
    assert degraded["body"]["title"] == "3 services degraded (critical)"
    for service in ("ai", "exec-risk", "analytics"):
        assert f"{service} degraded" in degraded["body"]["message"]
    [sent] = telegram.sent
    assert "3 services degraded" in html.unescape(sent["text"])

    (worker,) = start_workers([("analytics@notified", "analytics")], supervised)
    try:
        assert sweep()["analytics"]["degraded"] is False
    finally:
        worker.stop()
    wait_for(lambda: (deliver_notifications(), len(receiver.received) > 1)[1], 20, "the recovery")
    assert [m["body"]["title"] for m in receiver.received[1:]] == ["analytics recovered"]
    assert len(telegram.sent) == 2
    assert "analytics recovered" in html.unescape(telegram.sent[1]["text"])
