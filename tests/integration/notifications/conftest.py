"""Notification fixtures: a channel posting to a local webhook receiver, one posting to a local
stand-in of Telegram's Bot API (where every process of the tests sends Telegram's traffic), and
the consumer group placed at the end of the log, so a test hears only the events it makes."""

from __future__ import annotations

import pytest

from tests import environment
from tests.support.http_receivers import TelegramBotAPI, WebhookReceiver

TELEGRAM_CHAT = -100777


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


@pytest.fixture(scope="session")
def telegram_server():
    with TelegramBotAPI(port=environment.TELEGRAM_API_PORT) as server:
        yield server


@pytest.fixture
def telegram(telegram_server, notifications_group):
    """The Bot API stand-in, with nothing recorded yet."""
    telegram_server.forget()
    return telegram_server


@pytest.fixture
def telegram_channel(telegram):
    """A channel to a Telegram group chat through the bot's token, as operators configure it."""
    from trading.models import NotificationChannel

    url = f"tgram://123456:stand-in-bot-token/{TELEGRAM_CHAT}"
    return NotificationChannel.objects.create(name="desk telegram", url=url)
