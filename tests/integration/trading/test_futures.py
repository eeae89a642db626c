"""A USDⓈ-M perpetual futures account through the API, with exec-risk in real worker
processes: leverage, shorts, margin, reduce-only, INSUFFICIENT_MARGIN, and a liquidation when
bars move against a high-leverage position, fed through the feed's path."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from tests.support.processes import wait_for
from tests.support.trading_api import post_signal, settled
from trading.events import log
from trading.events.consumer import ensure_group
from trading.ledger import services as ledger
from trading.marketdata.services import publish_bars
from trading.models import Account, Order, Position, RiskLimits
from trading.risk import services as risk
from trading.store import redis_client

pytestmark = pytest.mark.django_db(transaction=True)

DONE = ("denied", "filled", "rejected")


@pytest.fixture(autouse=True)
def _workers(service_workers):
    return service_workers


@pytest.fixture(autouse=True)
def _limits(db):
    RiskLimits.objects.update_or_create(
        symbol="",
        defaults={"max_position_notional": 10**6, "max_total_exposure": 10**6,
                  "max_leverage": 125},
    )  # fmt: skip


def futures_account(cash: str) -> Account:
    account = risk.get_account()
    Account.objects.filter(pk=account.pk).update(kind="futures", starting_cash=cash,
                                                 peak_equity=cash)  # fmt: skip
    account.refresh_from_db()
    return account


def fate(api, **fields) -> dict:
    return settled(api, post_signal(api, notional=None, **fields)["id"], *DONE)


def margin(api) -> dict:
    return api.get("/api/v1/portfolio").json()["margin"]


def test_a_futures_account_goes_long_then_short_with_margin(api, market):
    account = futures_account("10000")
    price = market["BTCUSDT"].close

    long = fate(api, quantity="0.1", leverage=5)
    assert long["status"] == "filled", long
    position = Position.objects.get(status="open")
    assert position.quantity == Decimal("0.1")
    held = margin(api)
    assert held["positions"]["BTCUSDT"]["leverage"] == 5
    assert Decimal(held["initial_margin"]) == pytest.approx(
        Decimal("0.1") * price / 5, rel=Decimal("0.01")
    )
    assert Decimal(held["positions"]["BTCUSDT"]["liquidation_price"]) < price
    assert "not applied" in held["funding"]

    # Reduce-only may not take it through zero.
    assert fate(api, side="SELL", quantity="0.3", reduce_only=True)["reason"] == "REDUCE_ONLY"
    # Without it, a SELL beyond the long opens a short: no base asset needed.
    flipped = fate(api, side="SELL", quantity="0.3")
    assert flipped["status"] == "filled", flipped["orders"][0]["error"]
    short = Position.objects.get(status="open")
    assert short.quantity == Decimal("-0.2")
    assert Decimal(margin(api)["positions"]["BTCUSDT"]["liquidation_price"]) > price

    closed = settled(api, post_signal(api, side="BUY", notional=None, close_position=True)["id"],
                     *DONE)  # fmt: skip
    assert closed["status"] == "filled", closed
    assert not Position.objects.filter(status="open").exists()
    # The wallet moved by realized PnL less fees only, and the running total agrees with the fills.
    wallet = ledger.account_cash(account)
    assert wallet == ledger.ledger_cash(account)
    assert Decimal(margin(api)["wallet_balance"]) == wallet
    assert wallet < Decimal("10000")  # fees and slippage, no position value in the wallet


def test_an_order_beyond_the_available_margin_is_denied_insufficient_margin(api, market):
    futures_account("1000")
    price = market["BTCUSDT"].close
    quantity = (Decimal("1500") / price).quantize(Decimal("0.001"))

    denied = fate(api, quantity=str(quantity), leverage=1)
    assert (denied["status"], denied["reason"]) == ("denied", "INSUFFICIENT_MARGIN")
    # At 2x the same order's margin fits.
    assert fate(api, quantity=str(quantity), leverage=2)["status"] == "filled"


def test_a_position_closes_when_its_margin_has_left_no_room_for_another(api, market):
    futures_account("1000")
    price = market["BTCUSDT"].close
    # Nearly all the wallet is the long's margin at 2x: a second such order would not fit.
    quantity = (Decimal("1900") / price).quantize(Decimal("0.001"))
    assert fate(api, quantity=str(quantity), leverage=2)["status"] == "filled"
    assert fate(api, quantity=str(quantity), leverage=2)["reason"] == "INSUFFICIENT_MARGIN"

    # Closing opens nothing: it holds no initial margin, so it is never refused for want of it.
    closed = fate(api, side="SELL", close_position=True)
    assert closed["status"] == "filled", closed
    assert Order.objects.get(signal_id=closed["id"]).reduce_only
    assert not Position.objects.filter(status="open").exists()


def test_a_reduce_only_order_with_no_position_is_denied(api, market):
    futures_account("1000")
    assert fate(api, side="SELL", quantity="0.001", reduce_only=True)["reason"] == "REDUCE_ONLY"
    assert not Order.objects.exists()


def test_a_high_leverage_position_is_liquidated_when_bars_move_against_it(api, market):
    futures_account("1000")
    bar = market["BTCUSDT"]
    quantity = (Decimal("40000") / bar.close).quantize(Decimal("0.001"))
    opened = fate(api, quantity=str(quantity), leverage=50)
    assert opened["status"] == "filled", opened
    liquidation = Decimal(margin(api)["positions"]["BTCUSDT"]["liquidation_price"])
    assert liquidation < bar.close

    # A bar above the liquidation price leaves it; the next, below it, liquidates.
    above = liquidation + (bar.close - liquidation) / 2
    below = liquidation * Decimal("0.999")
    bars = []
    for step, close in enumerate((above, below), start=1):
        moved = timedelta(minutes=5 * step)
        times = {"open_time": bar.open_time + moved, "close_time": bar.close_time + moved}
        bars.append(replace(bar, open=close, high=close, low=close, close=close, **times))
    # exec-risk's group starts at the end of the log, as on a platform already running.
    client = redis_client()
    ensure_group(client, "exec-risk", start="$")
    client.xgroup_setid(log.events_stream(), "exec-risk", "$")
    publish_bars([bars[0]])
    publish_bars([bars[1]])

    wait_for(lambda: not Position.objects.filter(status="open").exists(), 60, "the liquidation")
    order = Order.objects.get(purpose="liquidation")
    assert order.status == "FILLED"
    assert abs(order.average_price - below) < Decimal("0.0001")  # at the mark, as stored
    events = api.get("/api/v1/events", {"correlation_id": opened["correlation_id"]}).json()
    liquidated = [e for e in events["events"] if e["type"] == "position.liquidated"]
    assert len(liquidated) == 1
    assert Decimal(liquidated[0]["payload"]["margin_balance"]) < Decimal(
        liquidated[0]["payload"]["maintenance_margin"]
    )
    metrics = api.get("/services/exec-risk/metrics").content.decode()
    assert 'exec_risk_service_liquidations_total{symbol="BTCUSDT"} 1' in metrics
