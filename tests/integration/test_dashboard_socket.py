"""The dashboard websocket: login required, a snapshot, then sequenced, coalesced deltas."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.conf import settings

from tests import environment
from tests.support.dashboard_socket import communicator, login, next_of_type
from trading.events.broadcast import DASHBOARD_GROUP

pytestmark = pytest.mark.django_db(transaction=True)


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
        delta = await next_of_type(socket, "delta")
        while not delta["events"]:
            delta = await next_of_type(socket, "delta")
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


# --- malformed frames, group membership, origins ------------------------------------------------

MALFORMED = [
    ({"text_data": "not json"}, "not JSON"),
    ({"text_data": "[" * 2000 + "]" * 2000}, "not JSON"),  # deeper than the parser recurses
    ({"text_data": '["resync"]'}, "expected a JSON object"),
    ({"text_data": '{"action": "buy everything"}'}, "unknown action 'buy everything'"),
    ({"text_data": '{"type": "resync"}'}, "unknown action None"),
    ({"bytes_data": b"\x00\x01"}, "binary frames are not accepted"),
    ({"text_data": '{"action": "resync", "pad": "' + "x" * 5000 + '"}'}, "longer than 4096"),
]


def test_a_malformed_frame_is_answered_with_an_error_and_the_socket_stays_usable(
    olivia, market, redis_server
):
    session = login(olivia)

    async def scenario():
        socket = communicator(session)
        connected, _ = await socket.connect()
        assert connected
        assert (await socket.receive_json_from(timeout=10))["type"] == "snapshot"
        for frame, detail in MALFORMED:
            await socket.send_to(**frame)
            answer = await next_of_type(socket, "error")
            assert detail in answer["detail"], (frame, answer)
        await socket.send_json_to({"action": "resync"})
        assert (await next_of_type(socket, "snapshot"))["type"] == "snapshot"
        await socket.disconnect()

    run(scenario())


def group_members(redis_client) -> int:
    key = f"{settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']}:group:{DASHBOARD_GROUP}"
    assert redis_client.type(key) in ("zset", "none")
    return redis_client.zcard(key)


def test_bad_frames_and_disconnects_leave_no_member_in_the_group(
    olivia, market, redis_server, redis_client
):
    session = login(olivia)
    assert group_members(redis_client) == 0

    async def scenario():
        sockets = [communicator(session) for _ in range(20)]
        for socket in sockets:
            assert (await socket.connect())[0]
            assert (await socket.receive_json_from(timeout=10))["type"] == "snapshot"
        assert group_members(redis_client) == 20
        for socket in sockets:
            for _ in range(20):  # 400 bad frames in all
                await socket.send_to(text_data="{not json")
            assert (await next_of_type(socket, "error"))["type"] == "error"
        for socket in sockets:
            await socket.disconnect()

    run(scenario())
    assert group_members(redis_client) == 0


def test_a_connection_that_fails_in_a_handler_leaves_the_group(
    olivia, market, redis_server, redis_client, monkeypatch
):
    from controlpanel.dashboard import consumers

    session = login(olivia)

    async def scenario():
        socket = communicator(session)
        assert (await socket.connect())[0]
        assert (await socket.receive_json_from(timeout=10))["type"] == "snapshot"
        assert group_members(redis_client) == 1

        def broken(names):
            raise RuntimeError("the database went away")

        monkeypatch.setattr(consumers.sections, "build", broken)
        await socket.send_json_to({"action": "resync"})
        with pytest.raises(RuntimeError, match="the database went away"):
            await socket.receive_output(timeout=10)

    run(scenario())
    assert group_members(redis_client) == 0


def test_only_the_pages_own_origin_may_open_the_socket(web_url, olivia, redis_server):
    """Through the servers make run starts: uvicorn refuses the handshake of another origin
    (another port of an allowed host included) with a 403, and accepts the page's own."""
    import websockets

    socket_url = f"ws://127.0.0.1:{environment.WS_PORT}/ws/dashboard/"
    cookie = f"{settings.SESSION_COOKIE_NAME}={login(olivia)}"

    async def first_message(origin: str | None) -> dict:
        headers = {"Cookie": cookie} | ({"Origin": origin} if origin else {})
        async with websockets.connect(socket_url, additional_headers=headers) as socket:
            return json.loads(await asyncio.wait_for(socket.recv(), 10))

    for origin in ("http://127.0.0.1:9999", "https://127.0.0.1:" + str(environment.WEB_PORT),
                   "http://evil.example", "null", None):  # fmt: skip
        with pytest.raises(websockets.InvalidStatus) as refused:
            run(first_message(origin))
        assert refused.value.response.status_code == 403, origin

    for origin in (web_url, f"http://localhost:{environment.WEB_PORT}"):
        assert run(first_message(origin))["type"] == "snapshot", origin
