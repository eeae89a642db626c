"""Notification fixtures: a channel posting to a local webhook receiver, and the consumer group
placed at the end of the log, so a test hears only the events it makes."""

from __future__ import annotations

import pytest

from tests.support.http_receivers import WebhookReceiver


@pytest.fixture
def notifications_group(redis_server):
    from trading.events.consumer import ensure_group
    from trading.events.log import events_stream
    from trading.notifications.consumers import GROUP
    from trading.store import redis_client

    client = redis_client()
    ensure_group(client, GROUP, start="$")
    client.xgroup_setid(events_stream(), GROUP, "$")
    return GROUP


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def channel(receiver, notifications_group):
    from trading.models import NotificationChannel

    return NotificationChannel.objects.create(name="desk webhook", url=receiver.url())
