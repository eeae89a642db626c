"""Published events reach the dashboard's group on the real channel layer (Redis), and what a
process publishes in quick succession travels as one message."""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer

from trading.events.broadcast import COALESCE_SECONDS, DASHBOARD_GROUP, broadcast
from trading.events.envelope import new_event


def listen(count: int, publish) -> list[dict]:
    """Joins the dashboard's group, runs ``publish`` in a thread, returns ``count`` messages."""

    async def run() -> list[dict]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(DASHBOARD_GROUP, channel)
        try:
            await asyncio.to_thread(publish)
            return [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(count)]
        finally:
            await layer.group_discard(DASHBOARD_GROUP, channel)

    return asyncio.run(run())


def test_events_published_together_go_out_as_one_message(redis_server):
    events = [
        new_event("signal.generated", {"symbol": "BTCUSDT", "n": n}, service="ai") for n in range(3)
    ]
    futures = []

    def publish() -> None:
        futures.append(broadcast(events[:1]))
        futures.append(broadcast(events[1:]))
        assert futures[0].result(timeout=5) == 3

    (message,) = listen(1, publish)
    assert message["type"] == "events.published"
    assert [e["event_id"] for e in message["events"]] == [e.event_id for e in events]
    assert futures[0] is futures[1]


def test_events_further_apart_than_the_window_go_out_separately(redis_server):
    import time

    first, second = (new_event("signal.generated", {"n": n}, service="ai") for n in range(2))

    def publish() -> None:
        assert broadcast([first]).result(timeout=5) == 1
        time.sleep(COALESCE_SECONDS * 2)
        assert broadcast([second]).result(timeout=5) == 1

    messages = listen(2, publish)
    assert [[e["event_id"] for e in m["events"]] for m in messages] == [
        [first.event_id],
        [second.event_id],
    ]
