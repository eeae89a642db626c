"""The dashboard websocket: login required, a snapshot, then sequenced, coalesced deltas."""

from __future__ import annotations

import asyncio

import pytest
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings

from controlpanel.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")


def communicator(session_key: str | None = None) -> WebsocketCommunicator:
    headers = [ORIGIN, (b"host", b"localhost")]
    if session_key:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode()))
    return WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)


def login(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.session.session_key


def run(coroutine):
    return asyncio.run(coroutine)


def test_an_anonymous_socket_is_closed(redis_server):
    async def scenario():
        socket = communicator()
        connected, _ = await socket.connect()
        assert connected
        closed = await socket.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": 4401}

    run(scenario())


def test_a_snapshot_then_deltas_with_rising_sequence_numbers(olivia, market, redis_server):
    from asgiref.sync import sync_to_async

    from trading.events.envelope import new_event
    from trading.events.log import publish_many

    session = login(olivia)

    async def scenario():
        socket = communicator(session)
        connected, _ = await socket.connect()
        assert connected
        snapshot = await socket.receive_json_from(timeout=10)
        assert snapshot["type"] == "snapshot"
        assert snapshot["user"] == {"username": "olivia", "can_operate": True}
        assert set(snapshot["sections"]) >= {"prices", "positions", "pnl", "services", "trading"}
        assert set(snapshot["sections"]["prices"]) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}

        burst = [
            new_event("risk.alert", {"reason": f"burst {i}"}, service="exec-risk")
            for i in range(20)
        ]
        await sync_to_async(publish_many)(burst)
        delta = await socket.receive_json_from(timeout=10)
        while delta["type"] == "delta" and not delta["events"]:
            delta = await socket.receive_json_from(timeout=10)
        assert delta["seq"] > snapshot["seq"]
        # twenty events in one burst arrive coalesced, not as twenty messages
        assert len(delta["events"]) == 20

        await socket.send_json_to({"action": "resync"})
        again = await socket.receive_json_from(timeout=10)
        while again["type"] != "snapshot":
            again = await socket.receive_json_from(timeout=10)
        assert again["seq"] > delta["seq"]
        await socket.disconnect()

    run(scenario())


def test_a_viewer_snapshot_says_it_cannot_operate(victor, redis_server):
    session = login(victor)

    async def scenario():
        socket = communicator(session)
        connected, _ = await socket.connect()
        assert connected
        snapshot = await socket.receive_json_from(timeout=10)
        assert snapshot["user"]["can_operate"] is False
        await socket.disconnect()

    run(scenario())
