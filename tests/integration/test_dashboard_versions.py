"""The dashboard consumer's state version: what it tells the page it shows, and when it sends a
snapshot unasked. Each test has a channel-layer prefix of its own, so its group and counter see
only the broadcasts it makes; a broadcast is faked by incrementing the counter as a producer does
(``INCR``) and sending the group message that would carry it, or not sending it (lost)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.layers import get_channel_layer

from tests.support.dashboard_socket import communicator, login, next_of_type
from trading.events.broadcast import DASHBOARD_GROUP, version_key
from trading.events.envelope import new_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def layer(settings, redis_server):
    """The channel layer on a prefix of this test's own."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_server.url], "prefix": f"versions-{uuid.uuid4().hex[:8]}"},
        }
    }
    return get_channel_layer()


@pytest.fixture
def counter(layer, redis_client):
    """The version counter in Redis, as the producers keep it."""

    class Counter:
        key = version_key(layer)

        def bump(self) -> int:
            return redis_client.incr(self.key)

        def set(self, value: int) -> None:
            redis_client.set(self.key, value)

    return Counter()


def alert(reason: str) -> dict:
    """An event the feed shows, told apart by its correlation id."""
    return new_event(
        "risk.alert", {"reason": reason}, service="exec-risk", correlation_id=str(uuid.uuid4())
    ).as_json()


async def deliver(layer, epoch: str, version: int, *events: dict) -> None:
    message = {"type": "events.published", "events": list(events), "epoch": epoch,
               "version": version}  # fmt: skip
    await layer.group_send(DASHBOARD_GROUP, message)


async def next_delta_with_events(socket) -> dict:
    while not (delta := await next_of_type(socket, "delta"))["events"]:
        pass
    return delta


def run(coroutine):
    return asyncio.run(coroutine)


def test_the_snapshot_names_the_counter_and_the_servers_run_id(olivia, layer, counter,
                                                                redis_client):  # fmt: skip
    counter.set(41)
    session = login(olivia)

    async def scenario():
        socket = communicator(session)
        assert (await socket.connect())[0]
        snapshot = await next_of_type(socket, "snapshot")
        assert snapshot["version"] == 41
        assert snapshot["epoch"] == redis_client.info("server")["run_id"]
        await socket.disconnect()

    run(scenario())


def test_a_delta_names_the_highest_version_received_without_a_gap(olivia, layer, counter):
    session = login(olivia)

    async def scenario():
        socket = communicator(session)
        assert (await socket.connect())[0]
        snapshot = await next_of_type(socket, "snapshot")
        epoch, first, second = snapshot["epoch"], counter.bump(), counter.bump()

        # The second producer's message overtakes the first's: shown, but the version waits.
        overtaking, overtaken = alert("second"), alert("first")
        await deliver(layer, epoch, second, overtaking)
        delta = await next_delta_with_events(socket)
        assert [e["correlation_id"] for e in delta["events"]] == [overtaking["correlation_id"]]
        assert delta["version"] == snapshot["version"]

        await deliver(layer, epoch, first, overtaken)
        delta = await next_delta_with_events(socket)
        assert [e["correlation_id"] for e in delta["events"]] == [overtaken["correlation_id"]]
        assert delta["version"] == second
        await socket.disconnect()

    run(scenario())


def test_a_broadcast_the_snapshot_covers_is_not_shown_again(olivia, layer, counter):
    counter.bump()
    session = login(olivia)

    async def scenario():
        socket = communicator(session)
        assert (await socket.connect())[0]
        snapshot = await next_of_type(socket, "snapshot")
        late = alert("late")
        await deliver(layer, snapshot["epoch"], snapshot["version"], late)
        fresh = alert("fresh")
        await deliver(layer, snapshot["epoch"], counter.bump(), fresh)
        delta = await next_delta_with_events(socket)
        assert [e["correlation_id"] for e in delta["events"]] == [fresh["correlation_id"]]
        assert delta["version"] == snapshot["version"] + 1
        await socket.disconnect()

    run(scenario())


def test_a_lost_broadcast_shows_in_a_heartbeat_and_a_resync_catches_up(olivia, layer, counter):
    session = login(olivia)

    async def scenario():
        socket = communicator(session)
        assert (await socket.connect())[0]
        snapshot = await next_of_type(socket, "snapshot")
        lost = counter.bump()  # a producer took a version; its message never arrived

        # The first heartbeat after the loss may still name the version of before it; the one
        # after names the lost one, which no delta ever reached.
        beats = [await next_of_type(socket, "heartbeat") for _ in range(2)]
        assert beats[-1]["version"] == lost > snapshot["version"]
        assert {beat["epoch"] for beat in beats} == {snapshot["epoch"]}

        await socket.send_json_to({"action": "resync"})
        again = await next_of_type(socket, "snapshot")
        assert again["version"] == lost
        assert (await next_of_type(socket, "heartbeat"))["version"] == lost
        await socket.disconnect()

    run(scenario())


def test_a_broadcast_from_another_epoch_brings_a_snapshot(olivia, layer, counter):
    session = login(olivia)

    async def scenario():
        socket = communicator(session)
        assert (await socket.connect())[0]
        snapshot = await next_of_type(socket, "snapshot")
        # As a Redis restarted since would stamp it; the counter may have lost its tail.
        await deliver(layer, "another-run-id", 1, alert("after a restart"))
        message = await socket.receive_json_from(timeout=10)
        while message["type"] == "heartbeat":
            message = await socket.receive_json_from(timeout=10)
        assert message["type"] == "snapshot", message
        assert message["seq"] > snapshot["seq"]
        await socket.disconnect()

    run(scenario())


def test_a_counter_that_went_backwards_brings_a_snapshot(olivia, layer, counter):
    counter.set(500)
    session = login(olivia)

    async def scenario():
        socket = communicator(session)
        assert (await socket.connect())[0]
        assert (await next_of_type(socket, "snapshot"))["version"] == 500
        counter.set(3)  # the key lost, or the counter started again
        again = await next_of_type(socket, "snapshot")
        assert again["version"] == 3
        await socket.disconnect()

    run(scenario())


def test_the_page_may_ask_for_a_heartbeat(olivia, layer, counter, monkeypatch):
    from controlpanel.dashboard import consumers

    monkeypatch.setattr(consumers, "HEARTBEAT_SECONDS", 3600)  # only the one asked for
    monkeypatch.setattr(consumers, "SERVICES_EVERY_SECONDS", 3600)
    session = login(olivia)

    async def scenario():
        socket = communicator(session)
        assert (await socket.connect())[0]
        snapshot = await next_of_type(socket, "snapshot")
        await socket.send_json_to({"action": "heartbeat"})
        beat = await next_of_type(socket, "heartbeat")
        assert beat["seq"] == snapshot["seq"] + 1
        assert (beat["epoch"], beat["version"]) == (snapshot["epoch"], snapshot["version"])
        await socket.disconnect()

    run(scenario())
