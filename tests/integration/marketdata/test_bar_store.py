"""The bar store: idempotent bulk storing, retention, and a window by command and by API."""

from __future__ import annotations

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from trading.marketdata.barstore import (
    purge_expired_bars,
    seed_bar_store,
    seed_bars,
    store_bars,
    stored_bars,
)
from trading.marketdata.feed import FeedPublisher
from trading.marketdata.klines import load_bundled_bars
from trading.models import MarketBar

pytestmark = pytest.mark.django_db(transaction=True)


def test_storing_the_same_bars_again_keeps_one_row_each():
    bars = load_bundled_bars("BTCUSDT")[:50]
    store_bars(bars, "replay")
    store_bars(load_bundled_bars("BTCUSDT")[10:60], "replay")
    assert MarketBar.objects.filter(symbol="BTCUSDT").count() == 60
    assert stored_bars("BTCUSDT") == load_bundled_bars("BTCUSDT")[:60]


def test_the_feed_stores_each_step_once_even_when_published_twice(redis_server):
    publisher = FeedPublisher("replay", wait=threading.Event().wait)
    step = [load_bundled_bars(s)[200] for s in ("BTCUSDT", "ETHUSDT")]
    publisher.publish(step)
    publisher.publish(step)
    assert MarketBar.objects.count() == 2
    assert set(MarketBar.objects.values_list("origin", flat=True)) == {"replay"}


def test_bars_older_than_the_retention_behind_the_newest_bar_are_purged():
    btc = load_bundled_bars("BTCUSDT")
    eth = load_bundled_bars("ETHUSDT")
    store_bars(btc[: 288 * 3], "replay")  # three days
    store_bars(eth[:10], "replay")
    deleted = purge_expired_bars(retention_days=1)
    kept = stored_bars("BTCUSDT")
    assert deleted == 288 * 2
    assert kept == btc[288 * 2 : 288 * 3]
    assert kept[-1].close_time - kept[0].close_time < timedelta(days=1)
    # Each symbol is measured against its own newest bar.
    assert stored_bars("ETHUSDT") == eth[:10]
    assert purge_expired_bars(retention_days=1) == 0


def test_the_seed_is_the_history_before_the_replays_start_stored_once(settings):
    settings.REPLAY_START_DAYS = 2
    assert seed_bar_store(["BTCUSDT"]) == 576
    assert seed_bar_store(["BTCUSDT"]) == 0
    assert stored_bars("BTCUSDT") == load_bundled_bars("BTCUSDT")[:576] == seed_bars(["BTCUSDT"])
    assert set(MarketBar.objects.values_list("origin", flat=True)) == {"seed"}


def test_the_bars_command_prints_a_window():
    btc = load_bundled_bars("BTCUSDT")
    store_bars(btc[:100], "replay")
    out = StringIO()
    call_command(
        "bars", "--symbol", "btcusdt", "--start", btc[10].open_time.isoformat(),
        "--end", btc[12].close_time.isoformat(), stdout=out,
    )  # fmt: skip
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("open_time,close_time,open")
    assert len(lines) == 4
    assert lines[1].split(",")[:2] == [
        btc[10].open_time.isoformat(),
        btc[10].close_time.isoformat(),
    ]
    assert lines[1].split(",")[5] == str(btc[10].close)


def test_the_bars_api_returns_a_window_and_refuses_a_bad_symbol(olivia):
    btc = load_bundled_bars("BTCUSDT")
    store_bars(btc[:100], "replay")
    api = APIClient()
    api.force_authenticate(olivia)
    answer = api.get(
        "/api/v1/bars",
        {"symbol": "BTCUSDT", "start": btc[20].open_time.isoformat(), "limit": 5},
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert [bar["close_time"] for bar in body["bars"]] == [
        bar.close_time.isoformat() for bar in btc[20:25]
    ]
    assert body["bars"][0] == btc[20].to_payload()
    latest = api.get("/api/v1/bars", {"symbol": "BTCUSDT", "limit": 2}).json()["bars"]
    assert [bar["open_time"] for bar in latest] == [b.open_time.isoformat() for b in btc[98:100]]
    assert api.get("/api/v1/bars", {"symbol": "BTC/USDT"}).status_code == 400
    assert api.get("/api/v1/bars", {"symbol": "BTCUSDT", "limit": 0}).status_code == 400
    assert APIClient().get("/api/v1/bars", {"symbol": "BTCUSDT"}).status_code in (401, 403)
