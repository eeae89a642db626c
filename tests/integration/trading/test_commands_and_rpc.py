"""The command-line side of trading, and RPC with a deadline."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from trading import bus, rpc
from trading.events.replay import read_window
from trading.marketdata.prices import latest_quotes
from trading.store import redis_client, rkey

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_halt_resume_and_show_risk_from_the_command_line(redis_server):
    assert "halted (ACTIVE -> HALTED)" in run("halt_trading", "--reason", "cli drill")
    assert "already halted" in run("halt_trading")
    summary = json.loads(run("show_risk"))
    assert summary["state"] == "HALTED"
    assert summary["history"][0]["reason"] == "cli drill"
    assert summary["limits"]["min_confidence"] == "0.7000"
    assert "resumed (HALTED -> ACTIVE)" in run("resume_trading")
    assert json.loads(run("show_risk"))["state"] == "ACTIVE"


def test_the_replay_feed_publishes_bars_as_events_and_latest_prices(redis_server, service_workers):
    redis_client().delete(rkey("prices"))
    before = len(read_window(types=["market.bar"], limit=1000))
    output = run("run_feed", "--bar-seconds", "0", "--max-steps", "3", "--start-index", "10",
                 "--no-wait-for-model")  # fmt: skip
    assert "published 3 steps" in output
    bars = read_window(types=["market.bar"], limit=1000)
    assert len(bars) - before == 9  # three symbols, three steps
    quotes = latest_quotes()
    assert set(quotes) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    from trading.marketdata.klines import load_bundled_bars

    assert quotes["ETHUSDT"].bar == load_bundled_bars("ETHUSDT")[12]


def test_the_replay_feed_refuses_a_symbol_it_has_no_data_for(redis_server):
    with pytest.raises(CommandError, match="no recorded klines for DOGEUSDT"):
        run("run_feed", "--symbols", "DOGEUSDT", "--max-steps", "1")


def test_events_command_prints_and_republishes_a_window(redis_server):
    from trading.events.envelope import new_event
    from trading.events.log import publish

    event = new_event("risk.alert", {"reason": "test"}, service="exec-risk", correlation_id="c-1")
    publish(event)
    lines = run("events", "--type", "risk.alert", "--correlation-id", "c-1").splitlines()
    assert json.loads(lines[-1])["event_id"] == event.event_id
    assert "re-published 1 events" in run("events", "--correlation-id", "c-1", "--republish")
    copies = read_window(correlation_id="c-1", limit=10)
    assert copies[-1][1].replay_of == event.event_id


def test_an_rpc_without_an_answer_is_a_clear_timeout_after_its_retries(redis_server, client):
    with pytest.raises(rpc.RpcTimeout, match=r"did not answer within 200 ms \(2 attempts\)"):
        rpc.call(bus.PING_SERVICE, "x", queue="nobody-consumes-this", timeout=0.2, retries=1)
    text = client.get("/services/exec-risk/metrics").content.decode()
    assert 'exec_risk_service_rpc_timeouts_total{task="trading.observability.ping_service"}' in text


def test_an_rpc_to_a_live_service_answers_within_its_deadline(redis_server, service_workers):
    answer = rpc.call(bus.PING_SERVICE, "hello", queue="analytics", timeout=5, retries=0)
    assert answer["payload"] == "hello"
    assert answer["queue"] == "analytics"
