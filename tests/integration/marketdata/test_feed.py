"""The market feed against a real Redis: it waits out an outage and carries on with the same step,
and a restarted feed carries on after the last bar it published."""

from __future__ import annotations

import itertools
import logging
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from io import StringIO

import pytest
import redis
from django.core.management import call_command
from prometheus_client.parser import text_string_to_metric_families

from deploy.redis_server import LocalRedis, free_port
from tests.support.processes import Process, wait_for
from trading.events.envelope import Event
from trading.marketdata.barstore import replay_start
from trading.marketdata.feed import Backoff, FeedPublisher, FeedStopped
from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.prices import latest_quotes
from trading.models import FeedPosition
from trading.store import redis_client, rkey

pytestmark = pytest.mark.django_db(transaction=True)

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
FIVE_MINUTES = timedelta(minutes=5)
OUTAGES_FIELD = '["ai_service_feed_redis_outages_total","",[]]'


def bar_events(client: redis.Redis, after: str = "-") -> list[Event]:
    return [
        event
        for event in (Event.from_fields(f) for _, f in client.xrange(rkey("events"), min=after))
        if event.type == "market.bar"
    ]


def assert_each_bar_once_and_none_skipped(events: list[Event]) -> dict[str, list]:
    """Per symbol, bar times 5 minutes apart without a gap, each bar under one event id."""
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for event in events:
        ids[(event.payload["symbol"], event.payload["close_time"])].add(event.event_id)
    assert all(len(found) == 1 for found in ids.values()), "a bar went out under two event ids"
    closes: dict[str, list] = defaultdict(list)
    for event in events:
        bar_close = event.payload["close_time"]
        if bar_close not in closes[event.payload["symbol"]]:
            closes[event.payload["symbol"]].append(bar_close)
    for symbol, times in closes.items():
        parsed = [datetime.fromisoformat(t) for t in times]
        gaps = {b - a for a, b in itertools.pairwise(parsed)}
        assert gaps == {FIVE_MINUTES}, f"{symbol}: bars skipped or out of order ({gaps})"
    return closes


# --- waiting out Redis -----------------------------------------------------------------------


def test_a_redis_outage_is_waited_out_with_back_off_and_logged_once(redis_server, caplog):
    failures = [redis.exceptions.BusyLoadingError("loading"), redis.exceptions.ConnectionError()]
    waits: list[float] = []

    def action() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    outages = redis_client().hget(rkey("metrics", "ai"), OUTAGES_FIELD)
    publisher = FeedPublisher("replay", wait=lambda s: waits.append(s) or False, backoff=Backoff())
    with caplog.at_level(logging.WARNING, logger="trading.marketdata.feed"):
        assert publisher.call(action) == "done"
        assert publisher.call(lambda: "again") == "again"
    assert waits == [0.1, 0.2]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("Redis unavailable (BusyLoadingError: loading)")
    assert messages[1].startswith("Redis answers again after")
    after = redis_client().hget(rkey("metrics", "ai"), OUTAGES_FIELD)
    assert float(after) == float(outages or 0) + 1


def test_a_stop_request_ends_the_wait_for_redis(redis_server):
    def action():
        raise redis.exceptions.ConnectionError("refused")

    publisher = FeedPublisher("replay", wait=lambda seconds: True)
    with pytest.raises(FeedStopped):
        publisher.call(action)


def test_the_feed_keeps_going_across_a_redis_restart(tmp_path, process_env):
    # A private server: the session's is shared by every test. Stopped with SIGTERM, so that
    # Redis keeps every write it acknowledged and a gap could only be the feed's.
    port = free_port()
    server = LocalRedis(port, tmp_path / "redis").start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    feed = Process(
        "feed",
        [
            sys.executable,
            *"manage.py run_feed --bar-seconds 0.02 --at-end loop --history 3".split(),
            # The feed alone: no model to wait for, no bar store to keep in simulated time.
            "--no-wait-for-model",
            "--no-simulated-time",
        ],
        {**process_env, "REDIS_URL": server.url},
        tmp_path / "log",
    ).start()
    try:
        wait_for(lambda: len(bar_events(client)) >= 30, 60, "the feed to publish 10 steps")
        server.stop()
        wait_for(lambda: "Redis unavailable" in feed.log_tail(200), 30, "the feed to notice")
        assert feed.alive(), feed.log_tail()
        server = LocalRedis(port, tmp_path / "redis").start()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        before = len(bar_events(client))
        wait_for(lambda: len(bar_events(client)) >= before + 30, 60, "publishing to carry on")
        assert feed.alive(), feed.log_tail()
    finally:
        feed.stop()
        log = feed.log_path.read_text()
        server.stop()
    server.start()
    try:
        events = bar_events(client)
    finally:
        client.close()
        server.stop()
    closes = assert_each_bar_once_and_none_skipped(events)
    btc = load_bundled_bars("BTCUSDT")
    assert closes["BTCUSDT"][0] == btc[replay_start()].close_time.isoformat()
    assert log.count("Redis unavailable") == 1, log
    assert log.count("Redis answers again") == 1, log
    position = FeedPosition.objects.get(source="replay", symbol="BTCUSDT")
    assert position.close_time.isoformat() == closes["BTCUSDT"][-1]


# --- restarting the feed ---------------------------------------------------------------------


def run_feed(*args: str) -> str:
    out = StringIO()
    call_command("run_feed", "--bar-seconds", "0", "--no-wait-for-model", "--no-simulated-time",
                 *args, stdout=out)  # fmt: skip
    return out.getvalue()


def metric_values(client) -> dict[str, float]:
    text = client.get("/services/ai/metrics").content.decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("ai_service_feed_")
    }


def test_a_restarted_feed_carries_on_after_the_last_bar_it_published(redis_server, client):
    shared = redis_client()
    shared.delete(rkey("prices"))
    last_id = shared.xrevrange(rkey("events"), count=1)
    after = f"({last_id[0][0]}" if last_id else "-"
    counted = metric_values(client).get("ai_service_feed_bars_published_total", 0.0)

    assert "at step" in run_feed("--max-steps", "4")
    assert "after the bar closing at" in run_feed("--max-steps", "4")

    closes = assert_each_bar_once_and_none_skipped(bar_events(shared, after))
    btc = load_bundled_bars("BTCUSDT")
    expected = [bar.close_time.isoformat() for bar in btc[replay_start() :][:8]]
    assert closes["BTCUSDT"] == expected
    # The price store took every bar: the second run is as fresh as the first.
    assert latest_quotes(["BTCUSDT"])["BTCUSDT"].bar == btc[replay_start() + 7]

    metrics = metric_values(client)
    assert metrics["ai_service_feed_bars_published_total"] == counted + 24
    last_close = btc[replay_start() + 7].close_time.timestamp()
    assert metrics["ai_service_feed_last_bar_close_timestamp_seconds"] == last_close
    assert metrics["ai_service_feed_last_publish_timestamp_seconds"] > 0


def test_an_explicit_start_index_replays_from_there_whatever_was_published(redis_server):
    redis_client().delete(rkey("prices"))
    run_feed("--max-steps", "2")
    assert "at step 10" in run_feed("--max-steps", "1", "--start-index", "10")
    position = FeedPosition.objects.get(source="replay", symbol="ETHUSDT")
    assert position.close_time == load_bundled_bars("ETHUSDT")[10].close_time
