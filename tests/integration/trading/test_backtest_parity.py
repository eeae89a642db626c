"""Parity: a live paper session through the real feed, workers and paper exchange, then the
backtest of the same stored bars, make the same orders and fills."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.conftest import SYMBOLS
from trading.backtest.parity import FillKey, Mismatch, OrderKey, check_parity, compare
from trading.events import log
from trading.events.consumer import ensure_group
from trading.marketdata.feed import FeedPublisher
from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.services import notify_bar_consumers
from trading.models import (
    Fill,
    Order,
    OutboxEvent,
    SelfTestResult,
    SelfTestRun,
    Signal,
    StrategyConfig,
)
from trading.risk.services import get_account, global_limits
from trading.selftest.scenarios.parity import backtest_parity
from trading.store import redis_client, rkey

pytestmark = pytest.mark.django_db(transaction=True)

GROUPS = ("ai", "exec-risk")
STEPS = 40


def fresh_market() -> None:
    """No recent bars, no paper orders or volume used on a bar by earlier tests, and the bar
    consumers starting from the end of the event log."""
    client = redis_client()
    client.delete(rkey("prices"), *(rkey("bars", s) for s in SYMBOLS))
    for key in client.scan_iter(match=rkey("paper", "*")):
        client.delete(key)
    for group in GROUPS:
        ensure_group(client, group, start="$")
        client.xgroup_setid(log.events_stream(), group, "$")


def settled(last_event_id: str) -> bool:
    """Both bar consumers read and acknowledged the step, and its signals are decided."""
    client = redis_client()
    groups = {g["name"]: g for g in client.xinfo_groups(log.events_stream())}
    for name in GROUPS:
        group = groups.get(name)
        if group is None or group["pending"]:
            return False
        if _id(group["last-delivered-id"]) < _id(last_event_id):
            return False
    if Signal.objects.filter(status=Signal.Status.PENDING).exists():
        return False
    return not Order.objects.filter(status__in=["NEW", "UNKNOWN"], filled_quantity=0).exists()


def handled(last_event_id: str, what: str) -> None:
    """Waits for the step to be handled, asking the bar consumers again now and then as beat
    does: a nudge can expire in a busy queue, or find a drain of an earlier test finishing."""
    deadline = time.monotonic() + 90
    while not settled(last_event_id):
        assert time.monotonic() < deadline, f"timed out waiting for {what} to be handled"
        for _ in range(40):
            time.sleep(0.05)
            if settled(last_event_id):
                return
        notify_bar_consumers()


def _id(text: str | bytes) -> tuple[int, int]:
    millis, sequence = (text.decode() if isinstance(text, bytes) else text).split("-")
    return int(millis), int(sequence)


def test_a_live_paper_session_and_its_backtest_make_the_same_orders_and_fills(
    service_workers, client
):
    account = get_account()
    limits = global_limits()
    limits.max_orders_per_minute = 1000
    limits.save()
    config = StrategyConfig.objects.create(
        name="fast-sma",
        kind="sma_crossover",
        parameters={"fast": 2, "slow": 5, "notional": "2000"},
        confidence=Decimal("0.8"),
    )
    config.accounts.add(account)
    fresh_market()
    feed = FeedPublisher("replay", wait=lambda seconds: False)
    series = {s: load_bundled_bars(s) for s in SYMBOLS}
    start = timezone.now()
    for index in range(STEPS):
        feed.publish([series[s][index] for s in SYMBOLS])
        last = redis_client().xrevrange(log.events_stream(), count=1)[0][0]
        handled(last, f"step {index}")
    end = timezone.now()

    parity = check_parity(account, start, end)

    assert parity.bars == STEPS * len(SYMBOLS)
    assert len(parity.live_fills) >= 6, "the fast crossover traded too little to compare"
    assert {f.side for f in parity.live_fills} == {"BUY", "SELL"}
    assert parity.mismatches == []
    by_symbol = sorted(parity.live_fills, key=lambda f: f.symbol)
    assert by_symbol == sorted(parity.backtest_fills, key=lambda f: f.symbol)
    assert sorted(parity.live_orders, key=lambda o: o.symbol) == sorted(
        parity.backtest_orders, key=lambda o: o.symbol
    )

    # The system check on the same book agrees, then sees a fill that live paid differently.
    outcome = backtest_parity(None)
    assert outcome.status == "PASS", outcome.detail
    assert outcome.data["fills"] == len(parity.live_fills) and outcome.data["mismatches"] == 0
    fill = Fill.objects.filter(order__account=account).order_by("-ts").first()
    Fill.objects.filter(pk=fill.pk).update(fee=fill.fee + Decimal("0.01"))
    outcome = backtest_parity(None)
    assert outcome.status == "FAIL" and outcome.data["mismatches"] == 1
    assert f"{fill.symbol}#" in outcome.detail and "fee" in outcome.detail
    event = OutboxEvent.objects.get(type="backtest.parity_mismatch")
    assert event.payload["mismatches"] == 1 and event.payload["strategy"] == parity.strategy
    run = SelfTestRun.objects.create(suite="integration", trigger="cli", status="failed",
                                     finished_at=timezone.now())  # fmt: skip
    SelfTestResult.objects.create(run=run, position=1, name="backtest_parity", title="parity",
                                  status=outcome.status, duration_seconds=1.0,
                                  detail=outcome.detail, data=outcome.data)  # fmt: skip
    text = client.get("/metrics").content.decode()
    assert 'quantum_trader_backtest_parity_mismatches{account="main"} 1.0' in text


def test_the_comparison_names_each_fill_that_differs_or_that_one_side_lacks():
    buy = FillKey("BTCUSDT", "BUY", Decimal("0.01"), Decimal("100"), Decimal("0.001"))
    sell = FillKey("BTCUSDT", "SELL", Decimal("0.01"), Decimal("101"), Decimal("0.00101"))
    eth = OrderKey("ETHUSDT", "BUY", Decimal("1"), Decimal("10"))
    assert compare("fill", [buy, sell], [buy, sell]) == []
    cheaper = FillKey("BTCUSDT", "SELL", Decimal("0.01"), Decimal("100.9"), Decimal("0.00101"))
    assert compare("fill", [buy, sell], [buy, cheaper]) == [
        Mismatch("fill", "BTCUSDT", 1, str(sell), str(cheaper))
    ]
    assert compare("order", [eth], []) == [Mismatch("order", "ETHUSDT", 0, str(eth), "none")]
