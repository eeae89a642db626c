"""The execution services driving the real Binance adapter, python-binance and all.

``responses`` stands in for Binance at the requests layer and answers with the recorded payloads
of tests/fixtures/binance (README there says which are real). Where the flow needs an answer to
match the order the platform sent (its client order id, symbol, side, quantities), a copy of the
payload is changed, and the comment at the copy says what changed. Everything else, the risk
checks, the database, the event log on the real Redis, is the platform's own.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from tests.support.bus import Sent, record_sends
from tests.support.signals import saved_signal
from trading import bus
from trading.events.replay import read_window
from trading.execution import orders, signals, venue
from trading.execution.adapter import client_order_id_for
from trading.ledger import services as ledger
from trading.models import Fill, Order, Position, Signal
from trading.risk import services as risk

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"
API = "https://testnet.binance.vision/api/v3"
ORDER_URL = f"{API}/order"
ORDER_TEST_URL = f"{API}/order/test"
MY_TRADES_URL = f"{API}/myTrades"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def add_error(http: responses.RequestsMock, method: str, url: str, name: str) -> None:
    recorded = load(name)
    http.add(
        method,
        url,
        json=recorded["body"],
        status=recorded["http_status"],
        headers=recorded.get("headers", {}),
    )


def params_of(request: requests.PreparedRequest) -> dict[str, str]:
    raw = urlsplit(request.url).query if request.method == "GET" else request.body or ""
    return dict(parse_qsl(raw.decode() if isinstance(raw, bytes) else raw))


def calls_to(http: responses.RequestsMock, method: str, url: str) -> list[dict[str, str]]:
    return [
        params_of(call.request)
        for call in http.calls
        if call.request.method == method and call.request.url.split("?")[0] == url
    ]


def full_buy_answer(client_order_id: str) -> dict:
    """The documented FULL answer to a MARKET order, as Binance would give it for ours.

    Changed from order.market.full.json: clientOrderId is ours; side SELL -> BUY; origQty and
    executedQty 10 -> 0.01 BTC, and each fill's qty and commission divided by 1000 to match
    (qty 0.001/0.005/0.002/0.001/0.001). The fill prices (4000 .. 3995), trade ids 56..60, orderId
    28 and the doc's inconsistent cummulativeQuoteQty are kept.
    """
    answer = load("order.market.full.json")
    answer.update(
        clientOrderId=client_order_id, side="BUY", origQty="0.01000000", executedQty="0.01000000"
    )
    for fill in answer["fills"]:
        fill["qty"] = str(Decimal(fill["qty"]) / 1000)
        fill["commission"] = str(Decimal(fill["commission"]) / 1000)
    return answer


def filled_query_answer(client_order_id: str) -> dict:
    """The real testnet answer to querying a FILLED BTCUSDT buy, for our order.

    Changed from order.query.filled.testnet-BTCUSDT.json: clientOrderId is ours; origQty and
    executedQty 0.000455 -> 0.001 BTC (0.000455 is off the 0.00001 step, so risk would refuse such
    a signal), and cummulativeQuoteQty 18.18960325 -> 39.97715 so the average price stays the
    recorded 39977.15.
    """
    return {
        **load("order.query.filled.testnet-BTCUSDT.json"),
        "clientOrderId": client_order_id,
        "origQty": "0.00100000",
        "executedQty": "0.00100000",
        "cummulativeQuoteQty": "39.97715000",
    }


def trades_of_filled_query() -> list[dict]:
    """The trades of the order in ``filled_query_answer`` (orderId 13464, BUY 0.001 BTC at
    39977.15), in the documented shape of GET /api/v3/myTrades (no real capture exists), with
    the commission in BTC, as Binance takes a buy's when BNB does not pay it.

    Changed from myTrades.doc-example.json, two copies: symbol BTCUSDT, orderId 13464, ids 1001
    and 1002 (made up), price 39977.15, qty 0.0006 and 0.0004 (adding up to the executedQty),
    quoteQty their notionals, commission 0.0000006 and 0.0000004 BTC (0.1%), isBuyer true.
    """
    [doc] = load("myTrades.doc-example.json")
    common = {**doc, "symbol": "BTCUSDT", "orderId": 13464, "price": "39977.15000000"}
    common.update(commissionAsset="BTC", isBuyer=True)
    return [
        {
            **common,
            "id": 1001,
            "qty": "0.00060000",
            "quoteQty": "23.98629000",
            "commission": "0.00000060",
        },
        {
            **common,
            "id": 1002,
            "qty": "0.00040000",
            "quoteQty": "15.99086000",
            "commission": "0.00000040",
        },
    ]


@pytest.fixture
def binance(settings, monkeypatch):
    """The platform configured for Binance testnet, with a fresh adapter built from the env."""
    settings.EXCHANGE = "binance"
    monkeypatch.setenv("BINANCE_MODE", "testnet")
    monkeypatch.setenv("BINANCE_API_KEY", "test-key-7f3a")
    monkeypatch.setenv("BINANCE_API_SECRET", "test-secret-do-not-leak-91c2")
    venue.venue_adapter.cache_clear()
    yield
    venue.venue_adapter.cache_clear()


@pytest.fixture
def http(binance, market):
    # order/test accepts every order unless a test says otherwise; each test counts the calls it
    # cares about itself.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, ORDER_TEST_URL, json=load("order.test.empty.json"))
        yield mock


@pytest.fixture
def reconcile_requests(monkeypatch) -> list[Sent]:
    """The reconcile tasks submit_order enqueues, recorded instead of sent to a broker."""
    return record_sends(monkeypatch, bus.RECONCILE_ORDER)


def buy_signal(quantity: str = "0.01") -> Signal:
    return saved_signal(
        risk.get_account(),
        symbol="BTCUSDT",
        side="BUY",
        confidence=Decimal("0.9"),
        quantity=Decimal(quantity),
    )


def events_of(signal: Signal) -> list[str]:
    window = read_window(limit=1000, correlation_id=str(signal.correlation_id))
    return [event.type for _, event in window]


def timeout_then_lookup_fails(http: responses.RequestsMock) -> None:
    """The order request times out, and so does the adapter's own lookup a second later."""
    http.add(responses.POST, ORDER_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    http.add(responses.GET, ORDER_URL, body=requests.exceptions.ReadTimeout("read timed out"))


def test_a_signal_is_sent_as_a_market_order_with_the_client_order_id_of_its_correlation_id(
    http, reconcile_requests
):
    pending = buy_signal()
    client_order_id = client_order_id_for(str(pending.correlation_id))
    http.add(responses.POST, ORDER_URL, json=full_buy_answer(client_order_id))

    decided = signals.process_signal(pending.pk)

    [sent] = calls_to(http, "POST", ORDER_URL)
    assert sent["newClientOrderId"] == client_order_id
    assert (sent["symbol"], sent["side"], sent["type"]) == ("BTCUSDT", "BUY", "MARKET")
    assert sent["quantity"] == "0.01"
    assert sent["newOrderRespType"] == "FULL"
    assert sent["signature"]
    assert decided.status == Signal.Status.FILLED
    order = decided.orders.get()
    assert (order.client_order_id, order.venue) == (client_order_id, "binance")
    assert reconcile_requests == []


def test_the_order_is_checked_with_order_test_before_it_is_placed(http):
    pending = buy_signal()
    http.add(
        responses.POST,
        ORDER_URL,
        json=full_buy_answer(client_order_id_for(str(pending.correlation_id))),
    )

    signals.process_signal(pending.pk)

    assert [urlsplit(c.request.url).path for c in http.calls] == [
        "/api/v3/order/test",
        "/api/v3/order",
    ]
    [checked] = calls_to(http, "POST", ORDER_TEST_URL)
    [placed] = calls_to(http, "POST", ORDER_URL)
    ignored = {"timestamp", "signature"}
    assert {k: v for k, v in checked.items() if k not in ignored} == {
        k: v for k, v in placed.items() if k not in ignored
    }


def test_a_filter_failure_on_order_test_rejects_the_signal_without_placing_an_order(
    http, reconcile_requests
):
    pending = buy_signal()
    recorded = load("error.-1013.LOT_SIZE.json")
    http.replace(
        responses.POST, ORDER_TEST_URL, json=recorded["body"], status=recorded["http_status"]
    )

    decided = signals.process_signal(pending.pk)

    assert (decided.status, decided.reason) == (Signal.Status.REJECTED, "EXCHANGE_REJECTED")
    assert decided.orders.get().status == Order.Status.REJECTED
    assert calls_to(http, "POST", ORDER_URL) == []
    assert reconcile_requests == []


def test_the_fills_of_the_full_answer_become_fills_and_an_open_position(http):
    pending = buy_signal()
    answer = full_buy_answer(client_order_id_for(str(pending.correlation_id)))
    http.add(responses.POST, ORDER_URL, json=answer)

    signals.process_signal(pending.pk)

    order = Order.objects.get(signal=pending)
    assert order.status == Order.Status.FILLED
    assert order.exchange_order_id == "28"
    assert order.filled_quantity == Decimal("0.01")
    fills = list(order.fills.order_by("trade_id"))
    assert [(f.trade_id, f.quantity, f.price, f.fee) for f in fills] == [
        ("56", Decimal("0.001"), Decimal("4000"), Decimal("0.004")),
        ("57", Decimal("0.005"), Decimal("3999"), Decimal("0.019995")),
        ("58", Decimal("0.002"), Decimal("3998"), Decimal("0.007996")),
        ("59", Decimal("0.001"), Decimal("3997"), Decimal("0.003997")),
        ("60", Decimal("0.001"), Decimal("3995"), Decimal("0.003995")),
    ]
    assert {f.fee_asset for f in fills} == {"USDT"}
    # (4 + 19.995 + 7.996 + 3.997 + 3.995) / 0.01, from the fills, not the doc's cummulativeQuoteQty
    assert order.average_price == Decimal("3998.3")
    position = Position.objects.get(account=order.account, symbol="BTCUSDT", status="open")
    assert position.quantity == Decimal("0.01")
    assert position.average_entry_price == Decimal("3998.3")
    assert position.fees_paid == Decimal("0.039983")
    assert position.correlation_id == pending.correlation_id
    assert events_of(pending).count("order.filled") == 5
    assert "position.opened" in events_of(pending)


def test_an_exchange_rejection_rejects_the_signal_and_writes_no_fill_or_position(
    http, reconcile_requests
):
    pending = buy_signal()
    add_error(http, responses.POST, ORDER_URL, "error.-2010.insufficient-balance.json")

    decided = signals.process_signal(pending.pk)

    assert decided.status == Signal.Status.REJECTED
    # Binance's own balance check: the reason the ledger's check gives, permanent.
    assert decided.reason == "INSUFFICIENT_BALANCE"
    assert "insufficient balance" in decided.detail
    order = decided.orders.get()
    assert order.status == Order.Status.REJECTED
    assert "code=-2010" in order.error
    assert order.filled_quantity == 0
    assert not Fill.objects.exists()
    assert not Position.objects.exists()
    assert len(calls_to(http, "POST", ORDER_URL)) == 1
    assert calls_to(http, "GET", ORDER_URL) == []  # a rejection is not looked up
    assert reconcile_requests == []
    assert "order.rejected" in events_of(pending)
    assert "order.filled" not in events_of(pending)


def test_after_a_timeout_the_order_is_unknown_until_reconcile_finds_it_filled(
    http, reconcile_requests
):
    pending = buy_signal("0.001")
    client_order_id = client_order_id_for(str(pending.correlation_id))
    timeout_then_lookup_fails(http)

    in_doubt = signals.process_signal(pending.pk)

    order = in_doubt.orders.get()
    assert in_doubt.status == Signal.Status.SUBMITTED
    assert order.status == Order.Status.UNKNOWN
    assert not order.fills.exists()
    assert not Position.objects.exists()
    assert reconcile_requests == [Sent(bus.RECONCILE_ORDER, (order.pk,), {"countdown": 1})]

    http.add(responses.GET, ORDER_URL, json=filled_query_answer(client_order_id))
    http.add(responses.GET, MY_TRADES_URL, json=trades_of_filled_query())
    start = ledger.account_cash(risk.get_account())
    reconciled = orders.reconcile_order(order.pk)

    lookups = calls_to(http, "GET", ORDER_URL)
    assert len(lookups) == 2  # the adapter's own, which timed out, and reconcile's
    assert [(p["symbol"], p["origClientOrderId"]) for p in lookups] == [
        ("BTCUSDT", client_order_id)
    ] * 2
    # The query has no trades: they are asked for by the order id it answered with.
    [trades] = calls_to(http, "GET", MY_TRADES_URL)
    assert (trades["symbol"], trades["orderId"]) == ("BTCUSDT", "13464")
    assert len(calls_to(http, "POST", ORDER_URL)) == 1
    assert reconciled.status == Order.Status.FILLED
    assert reconciled.exchange_order_id == "13464"
    assert reconciled.filled_quantity == Decimal("0.001")
    assert reconciled.average_price == Decimal("39977.15")
    assert "commission unknown" not in reconciled.error  # (it keeps the timeout's)
    # The real trades, with their commissions (paid in BTC, valued at the price in USDT).
    fills = list(reconciled.fills.order_by("trade_id"))
    assert [(f.trade_id, f.quantity, f.price, f.fee, f.fee_asset) for f in fills] == [
        ("1001", Decimal("0.0005994"), Decimal("39977.15"), Decimal("0.02398629"), "BTC"),
        ("1002", Decimal("0.0003996"), Decimal("39977.15"), Decimal("0.01599086"), "BTC"),
    ]
    # Binance credited 0.001 - 0.000001 BTC and took 39.97715 USDT: so does the book.
    position = Position.objects.get(symbol="BTCUSDT", status="open")
    assert (position.quantity, position.average_entry_price) == (
        Decimal("0.000999"),
        Decimal("39977.15"),
    )
    assert position.fees_paid == Decimal("0.03997715")
    account = risk.get_account()
    assert (
        ledger.account_cash(account) == ledger.ledger_cash(account) == start - Decimal("39.97715")
    )
    assert Signal.objects.get(pk=pending.pk).status == Signal.Status.FILLED


def test_when_the_trades_cannot_be_read_reconcile_records_the_totals_and_says_so(
    http, reconcile_requests, caplog
):
    pending = buy_signal("0.001")
    client_order_id = client_order_id_for(str(pending.correlation_id))
    timeout_then_lookup_fails(http)
    order = signals.process_signal(pending.pk).orders.get()
    http.add(responses.GET, ORDER_URL, json=filled_query_answer(client_order_id))
    add_error(http, responses.GET, MY_TRADES_URL, "error.-1003.429.json")

    reconciled = orders.reconcile_order(order.pk)

    assert reconciled.status == Order.Status.FILLED
    assert reconciled.filled_quantity == Decimal("0.001")
    # One fill for what the order's totals say executed, with no commission known.
    [fill] = reconciled.fills.all()
    assert fill.trade_id.startswith("reconciled-")
    assert (fill.quantity, fill.price, fill.fee) == (
        Decimal("0.001"),
        Decimal("39977.15"),
        Decimal("0"),
    )
    assert "commission unknown" in reconciled.error
    assert "code=-1003" in reconciled.error
    assert "commission unknown" in caplog.text
    position = Position.objects.get(symbol="BTCUSDT", status="open")
    assert position.quantity == Decimal("0.001")


def test_an_order_found_by_the_adapters_own_lookup_is_recorded_with_its_trades(
    http, reconcile_requests
):
    pending = buy_signal("0.001")
    client_order_id = client_order_id_for(str(pending.correlation_id))
    # The order request times out; a second later the adapter finds the order FILLED.
    http.add(responses.POST, ORDER_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    http.add(responses.GET, ORDER_URL, json=filled_query_answer(client_order_id))
    http.add(responses.GET, MY_TRADES_URL, json=trades_of_filled_query())

    decided = signals.process_signal(pending.pk)

    assert decided.status == Signal.Status.FILLED
    order = decided.orders.get()
    assert (order.status, order.filled_quantity) == (Order.Status.FILLED, Decimal("0.001"))
    assert sorted(order.fills.values_list("trade_id", flat=True)) == ["1001", "1002"]
    assert Position.objects.get(symbol="BTCUSDT", status="open").quantity == Decimal("0.000999")
    assert reconcile_requests == []
    assert len(calls_to(http, "POST", ORDER_URL)) == 1


def test_an_order_binance_does_not_have_is_sent_once_more_by_reconcile_with_the_same_id(
    http, reconcile_requests
):
    pending = buy_signal()
    client_order_id = client_order_id_for(str(pending.correlation_id))
    # A 504 "execution status unknown", then the adapter's lookup is rate limited.
    add_error(http, responses.POST, ORDER_URL, "error.-1007.json")
    add_error(http, responses.GET, ORDER_URL, "error.-1003.429.json")
    order = signals.process_signal(pending.pk).orders.get()
    assert order.status == Order.Status.UNKNOWN
    assert reconcile_requests == [Sent(bus.RECONCILE_ORDER, (order.pk,), {"countdown": 1})]

    add_error(http, responses.GET, ORDER_URL, "error.-2013.json")
    http.add(responses.POST, ORDER_URL, json=full_buy_answer(client_order_id))
    reconciled = orders.reconcile_order(order.pk)

    posts = calls_to(http, "POST", ORDER_URL)
    assert [p["newClientOrderId"] for p in posts] == [client_order_id] * 2
    on_order = [c.request.method for c in http.calls if c.request.url.split("?")[0] == ORDER_URL]
    assert on_order == ["POST", "GET", "GET", "POST"]  # sent, lookup, reconcile's lookup, resent
    assert reconciled.status == Order.Status.FILLED
    assert reconciled.fills.count() == 5
    assert Position.objects.get(symbol="BTCUSDT", status="open").quantity == Decimal("0.01")
    assert Signal.objects.get(pk=pending.pk).status == Signal.Status.FILLED


def test_processing_the_same_signal_twice_sends_one_order(http, reconcile_requests):
    pending = buy_signal()
    http.add(
        responses.POST,
        ORDER_URL,
        json=full_buy_answer(client_order_id_for(str(pending.correlation_id))),
    )

    signals.process_signal(pending.pk)
    again = signals.process_signal(pending.pk)

    assert again.status == Signal.Status.FILLED
    assert len(calls_to(http, "POST", ORDER_URL)) == 1
    assert Order.objects.filter(signal=pending).count() == 1
    assert Fill.objects.count() == 5
    assert Position.objects.get(symbol="BTCUSDT", status="open").quantity == Decimal("0.01")


def test_a_redelivered_signal_whose_order_is_in_doubt_looks_it_up_instead_of_resending(
    http, reconcile_requests
):
    pending = buy_signal("0.001")
    timeout_then_lookup_fails(http)
    signals.process_signal(pending.pk)
    http.add(
        responses.GET,
        ORDER_URL,
        json=filled_query_answer(client_order_id_for(str(pending.correlation_id))),
    )

    again = signals.process_signal(pending.pk)

    assert again.status == Signal.Status.FILLED
    assert len(calls_to(http, "POST", ORDER_URL)) == 1
    assert Order.objects.get(signal=pending).status == Order.Status.FILLED
    assert Position.objects.get(symbol="BTCUSDT", status="open").quantity == Decimal("0.001")
