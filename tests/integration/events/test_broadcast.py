"""Published events reach the dashboard's group on the real channel layer (Redis), and what a
process publishes in quick succession travels as one message."""

from __future__ import annotations

import asyncio

from channels.layers import get_channel_layer

from deploy.redis_server import LocalRedis, free_port
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


def test_each_send_carries_a_higher_version_of_the_redis_servers_epoch(redis_server, redis_client):
    import time

    first, second = (new_event("signal.generated", {"n": n}, service="ai") for n in range(2))

    def publish() -> None:
        assert broadcast([first]).result(timeout=5) == 1
        time.sleep(COALESCE_SECONDS * 2)
        assert broadcast([second]).result(timeout=5) == 1

    earlier, later = listen(2, publish)
    run_id = redis_client.info("server")["run_id"]
    assert earlier["epoch"] == later["epoch"] == run_id
    assert later["version"] > earlier["version"] > 0


def test_a_broadcast_after_a_redis_restart_goes_out_on_a_fresh_connection(tmp_path, settings):
    """Redis killed and started again on its data: the sending loop's pooled connection is dead,
    and the next broadcast still arrives, stamped with the new server's epoch."""
    server = LocalRedis(free_port(), tmp_path / "redis").start()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [server.url], "prefix": "restart"},
        }
    }
    first, second = (new_event("signal.generated", {"n": n}, service="ai") for n in range(2))
    try:
        # The sending loop now holds a connection to this server in its pool.
        (before,) = listen(1, lambda: broadcast([first]).result(timeout=5))
        server.process.kill()  # SIGKILL: no shutdown
        server.process.wait()
        server.start()  # the same port and data directory
        (after,) = listen(1, lambda: broadcast([second]).result(timeout=5))
    finally:
        server.stop()
    assert [e["event_id"] for e in after["events"]] == [second.event_id]
    assert after["epoch"] != before["epoch"]


def test_a_process_that_exits_right_after_publishing_still_delivers_and_exits_cleanly(redis_server):
    import os
    import subprocess
    import sys

    from tests.support.processes import ROOT

    script = (
        "import django; django.setup()\n"
        "from trading.events.broadcast import broadcast\n"
        "from trading.events.envelope import new_event\n"
        "broadcast([new_event('risk.state_changed', {'state': 'HALTED'}, service='exec-risk')])\n"
    )
    results = []

    def publish() -> None:
        results.append(
            subprocess.run(
                [sys.executable, "-c", script], cwd=ROOT, env=dict(os.environ), timeout=60
            )
        )

    (message,) = listen(1, publish)
    assert [e["type"] for e in message["events"]] == ["risk.state_changed"]
    assert results[0].returncode == 0
