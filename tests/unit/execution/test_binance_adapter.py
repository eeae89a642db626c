"""The Binance adapter, driving python-binance's real ``Client`` against recorded Binance answers.

``responses`` stands in for Binance at the requests layer, so every test sees the exact request
python-binance puts on the wire (path, parameters, HMAC signature) and the adapter's reading of a
real or documented answer. Fixture provenance: tests/fixtures/binance/README.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from hypothesis import assume, given
from hypothesis import strategies as st

from trading.execution.adapter import (
    CLIENT_ORDER_ID_RE,
    MAX_ATTEMPT,
    ExchangeAdapter,
    ExchangeError,
    ExchangeFill,
    OrderRequest,
    OrderStatus,
    client_order_id_for,
)
from trading.execution.binance import (
    BinanceAdapter,
    BinanceConfig,
    format_decimal,
    parse_order,
    parse_trades,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"
API = "https://testnet.binance.vision/api/v3"
ORDER_URL = f"{API}/order"
MY_TRADES_URL = f"{API}/myTrades"
KEY = "test-key-7f3a"
SECRET = "test-secret-do-not-leak-91c2"
LOOKUP_DELAY = 0.25


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def add_error(http: responses.RequestsMock, method: str, url: str, name: str) -> dict:
    recorded = load(name)
    http.add(
        method,
        url,
        json=recorded["body"],
        status=recorded["http_status"],
        headers=recorded.get("headers", {}),
    )
    return recorded


def raw_params(request: requests.PreparedRequest) -> str:
    if request.method == "GET":
        return urlsplit(request.url).query
    body = request.body
    return body.decode() if isinstance(body, bytes) else (body or "")


def params_of(request: requests.PreparedRequest) -> dict[str, str]:
    return dict(parse_qsl(raw_params(request), keep_blank_values=True))


def assert_signed(request: requests.PreparedRequest) -> None:
    """What Binance checks: HMAC-SHA256 of everything before the signature, with our secret."""
    assert request.headers["X-MBX-APIKEY"] == KEY
    signed, _, signature = raw_params(request).rpartition("&signature=")
    expected = hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).hexdigest()
    assert signature == expected
    assert abs(int(params_of(request)["timestamp"]) - time.time() * 1000) < 60_000


def calls_to(http: responses.RequestsMock, method: str, url: str) -> list:
    return [
        call
        for call in http.calls
        if call.request.method == method and call.request.url.split("?")[0] == url
    ]


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def adapter(sleeps) -> BinanceAdapter:
    config = BinanceConfig(mode="testnet", api_key=KEY, api_secret=SECRET)
    return BinanceAdapter(config, lookup_delay=LOOKUP_DELAY, sleep=sleeps.append)


def market_sell(correlation_id: str = "signal-42", quantity: str = "10") -> OrderRequest:
    return OrderRequest(
        symbol="BTCUSDT",
        side="SELL",
        order_type="MARKET",
        quantity=Decimal(quantity),
        client_order_id=client_order_id_for(correlation_id),
    )


def limit_buy_sol() -> OrderRequest:
    return OrderRequest(
        symbol="SOLUSDT",
        side="BUY",
        order_type="LIMIT",
        quantity=Decimal("1.10000000"),
        price=Decimal("15.50"),
        client_order_id=client_order_id_for("signal-sol-1"),
    )


def filled_query_for(client_order_id: str) -> dict:
    """The real testnet FILLED query answer, as Binance would give it for our id."""
    return {**load("order.query.filled.testnet-BTCUSDT.json"), "clientOrderId": client_order_id}


def trades_of_filled_query() -> list[dict]:
    """The trades of the order in ``filled_query_for`` (orderId 13464, BUY 0.000455 BTCUSDT at
    39977.15), in the documented shape of GET /api/v3/myTrades (no real capture exists).

    Changed from myTrades.doc-example.json, two copies: symbol BTCUSDT, orderId 13464, ids 1001
    and 1002 (made up), price 39977.15, qty 0.0003 and 0.000155 (adding up to the executedQty),
    quoteQty their notionals (adding up to the cummulativeQuoteQty), commission 0.0000003 and
    0.00000016 in BTC (0.1% of each, the second rounded up to BTC's 8 decimals), isBuyer true.
    """
    [doc] = load("myTrades.doc-example.json")
    common = {**doc, "symbol": "BTCUSDT", "orderId": 13464, "price": "39977.15000000"}
    common.update(commissionAsset="BTC", isBuyer=True)
    return [
        {
            **common,
            "id": 1001,
            "qty": "0.00030000",
            "quoteQty": "11.99314500",
            "commission": "0.00000030",
        },
        {
            **common,
            "id": 1002,
            "qty": "0.00015500",
            "quoteQty": "6.19645825",
            "commission": "0.00000016",
        },
    ]


FILLED_QUERY_FILLS = (
    ExchangeFill(Decimal("39977.15"), Decimal("0.0003"), Decimal("0.0000003"), "BTC", "1001"),
    ExchangeFill(Decimal("39977.15"), Decimal("0.000155"), Decimal("0.00000016"), "BTC", "1002"),
)


# -- placing orders -------------------------------------------------------------------------------


def test_a_market_order_comes_back_filled_with_its_fills(http, adapter):
    http.add(responses.POST, ORDER_URL, json=load("order.market.full.json"))
    req = market_sell()

    result = adapter.place_order(req)

    [call] = http.calls
    assert urlsplit(call.request.url).path == "/api/v3/order"
    assert_signed(call.request)
    sent = params_of(call.request)
    assert sent["symbol"] == "BTCUSDT"
    assert sent["side"] == "SELL"
    assert sent["type"] == "MARKET"
    assert sent["quantity"] == "10"
    assert sent["newClientOrderId"] == req.client_order_id
    assert sent["newOrderRespType"] == "FULL"
    assert sent["recvWindow"] == "5000"
    assert "price" not in sent and "timeInForce" not in sent

    assert result.status is OrderStatus.FILLED
    assert result.exchange_order_id == "28"
    assert result.side == "SELL"
    assert result.orig_quantity == result.executed_quantity == Decimal("10")
    assert result.transact_time == datetime(2017, 10, 11, 12, 32, 56, 595000, tzinfo=UTC)
    assert [(f.price, f.quantity, f.trade_id) for f in result.fills] == [
        (Decimal("4000"), Decimal("1"), "56"),
        (Decimal("3999"), Decimal("5"), "57"),
        (Decimal("3998"), Decimal("2"), "58"),
        (Decimal("3997"), Decimal("1"), "59"),
        (Decimal("3995"), Decimal("1"), "60"),
    ]
    assert sum(f.commission for f in result.fills) == Decimal("39.98300000")
    assert {f.commission_asset for f in result.fills} == {"USDT"}


def test_a_limit_order_sends_price_and_time_in_force_and_comes_back_open(http, adapter):
    http.add(responses.POST, ORDER_URL, json=load("order.limit.new.SOLUSDT.json"))

    result = adapter.place_order(limit_buy_sol())

    [call] = http.calls
    assert_signed(call.request)
    sent = params_of(call.request)
    assert (sent["type"], sent["side"], sent["timeInForce"]) == ("LIMIT", "BUY", "GTC")
    # Trailing zeros go; Binance accepts them, but not more than 20 decimals, and never 1E-8.
    assert (sent["quantity"], sent["price"]) == ("1.1", "15.5")
    assert result.status is OrderStatus.NEW
    assert result.is_open
    assert result.exchange_order_id == "3551312894"
    assert result.executed_quantity == 0
    assert result.fills == ()
    assert result.average_price is None


@pytest.mark.parametrize(
    ("quantity", "sent"),
    [("0.00000001", "0.00000001"), ("1E-8", "0.00000001"), ("1E+1", "10"), ("0.0010", "0.001")],
)
def test_quantities_are_sent_in_plain_notation(http, adapter, quantity, sent):
    http.add(responses.POST, ORDER_URL, json=load("order.market.full.json"))

    adapter.place_order(market_sell(quantity=quantity))

    assert params_of(http.calls[0].request)["quantity"] == sent


@given(
    st.decimals(min_value=Decimal("1E-20"), max_value=Decimal("99999999999999999999"), places=20)
)
def test_format_decimal_always_gives_a_number_binance_accepts(value):
    text = format_decimal(value)
    assert re.fullmatch(r"([0-9]{1,20})(\.[0-9]{1,20})?", text)
    assert Decimal(text) == value


def test_an_ack_answer_is_read_as_unknown_so_it_gets_looked_up():
    result = parse_order(load("order.market.ack.json"))
    assert result.status is OrderStatus.UNKNOWN
    assert result.exchange_order_id == "28"


@pytest.mark.parametrize(
    ("binance_status", "status"),
    [
        ("NEW", OrderStatus.NEW),
        ("PENDING_NEW", OrderStatus.NEW),
        ("PARTIALLY_FILLED", OrderStatus.PARTIALLY_FILLED),
        ("FILLED", OrderStatus.FILLED),
        ("CANCELED", OrderStatus.CANCELED),
        ("REJECTED", OrderStatus.REJECTED),
        ("EXPIRED", OrderStatus.EXPIRED),
        ("EXPIRED_IN_MATCH", OrderStatus.EXPIRED),
        ("PENDING_CANCEL", OrderStatus.UNKNOWN),
        ("SOMETHING_NEW", OrderStatus.UNKNOWN),
    ],
)
def test_binance_statuses_map_to_order_statuses(binance_status, status):
    assert parse_order({**load("order.query.json"), "status": binance_status}).status is status


def test_a_rejected_order_is_not_looked_up_or_resent(http, adapter, sleeps):
    add_error(http, responses.POST, ORDER_URL, "error.-2010.insufficient-balance.json")

    with pytest.raises(ExchangeError) as raised:
        adapter.place_order(market_sell())

    assert (raised.value.code, raised.value.retryable, raised.value.ambiguous) == (
        -2010,
        False,
        False,
    )
    assert "insufficient balance" in raised.value.message
    assert raised.value.insufficient_balance
    assert len(http.calls) == 1
    assert sleeps == []


# -- ambiguous outcomes ---------------------------------------------------------------------------


def _read_timeout(http):
    http.add(responses.POST, ORDER_URL, body=requests.ReadTimeout("read timed out"))


def _connection_reset(http):
    http.add(responses.POST, ORDER_URL, body=requests.ConnectionError("connection reset by peer"))


def _backend_timeout(http):
    add_error(http, responses.POST, ORDER_URL, "error.-1007.json")


def _gateway_html(http):
    http.add(responses.POST, ORDER_URL, body="<html>502 Bad Gateway</html>", status=502)


AMBIGUOUS_FAILURES = [
    pytest.param(_read_timeout, id="read-timeout"),
    pytest.param(_connection_reset, id="connection-reset"),
    pytest.param(_backend_timeout, id="-1007-504"),
    pytest.param(_gateway_html, id="502-html"),
]


@pytest.mark.parametrize("fail", AMBIGUOUS_FAILURES)
def test_after_an_ambiguous_failure_a_found_order_is_returned_without_resending(
    http, adapter, sleeps, fail
):
    req = market_sell()
    fail(http)
    http.add(responses.GET, ORDER_URL, json=filled_query_for(req.client_order_id))
    http.add(responses.GET, MY_TRADES_URL, json=trades_of_filled_query())

    result = adapter.place_order(req)

    assert len(calls_to(http, "POST", ORDER_URL)) == 1
    [lookup] = calls_to(http, "GET", ORDER_URL)
    assert_signed(lookup.request)
    assert params_of(lookup.request)["origClientOrderId"] == req.client_order_id
    assert sleeps == [LOOKUP_DELAY]
    assert result.client_order_id == req.client_order_id
    assert result.status is OrderStatus.FILLED
    assert result.executed_quantity == Decimal("0.00045500")
    assert result.average_price == Decimal("39977.15")
    # As if the first answer had arrived: with the fills and commissions a query lacks.
    assert result.fills == FILLED_QUERY_FILLS


def test_after_a_timeout_an_order_binance_does_not_have_is_resent_once_with_the_same_id(
    http, adapter, caplog
):
    req = market_sell()
    _read_timeout(http)
    add_error(http, responses.GET, ORDER_URL, "error.-2013.json")
    http.add(responses.POST, ORDER_URL, json=load("order.market.full.json"))

    with caplog.at_level(logging.DEBUG):
        result = adapter.place_order(req)

    posts = calls_to(http, "POST", ORDER_URL)
    assert [params_of(c.request)["newClientOrderId"] for c in posts] == [req.client_order_id] * 2
    for call in posts:
        assert_signed(call.request)
    assert [c.request.method for c in http.calls] == ["POST", "GET", "POST"]
    assert result.status is OrderStatus.FILLED
    assert len(result.fills) == 5
    assert SECRET not in caplog.text


def test_a_resend_that_also_times_out_is_not_sent_a_third_time(http, adapter):
    _read_timeout(http)
    add_error(http, responses.GET, ORDER_URL, "error.-2013.json")
    _read_timeout(http)

    with pytest.raises(ExchangeError) as raised:
        adapter.place_order(market_sell())

    assert raised.value.ambiguous and raised.value.retryable
    assert len(calls_to(http, "POST", ORDER_URL)) == 2


def test_a_resend_refused_as_duplicate_returns_the_order_that_landed_after_all(http, adapter):
    req = market_sell()
    _read_timeout(http)
    add_error(http, responses.GET, ORDER_URL, "error.-2013.json")
    http.add(
        responses.POST, ORDER_URL, json={"code": -2010, "msg": "Duplicate order sent."}, status=400
    )
    http.add(responses.GET, ORDER_URL, json=filled_query_for(req.client_order_id))
    http.add(responses.GET, MY_TRADES_URL, json=trades_of_filled_query())

    result = adapter.place_order(req)

    assert result.status is OrderStatus.FILLED
    assert result.fills == FILLED_QUERY_FILLS
    assert len(calls_to(http, "POST", ORDER_URL)) == 2


def test_when_the_lookup_fails_too_nothing_is_resent_and_the_error_stays_ambiguous(http, adapter):
    _read_timeout(http)
    add_error(http, responses.GET, ORDER_URL, "error.-1003.429.json")

    with pytest.raises(ExchangeError) as raised:
        adapter.place_order(market_sell())

    assert raised.value.ambiguous and raised.value.retryable
    assert raised.value.retry_after == 35
    assert len(calls_to(http, "POST", ORDER_URL)) == 1


def test_a_connect_timeout_is_retryable_but_not_ambiguous(http, adapter, sleeps):
    http.add(responses.POST, ORDER_URL, body=requests.ConnectTimeout("connect timed out"))

    with pytest.raises(ExchangeError) as raised:
        adapter.place_order(market_sell())

    assert raised.value.retryable and not raised.value.ambiguous
    assert len(http.calls) == 1
    assert sleeps == []


# -- order/test, query, cancel, open orders, account, exchangeInfo, ping ---------------------------


def test_validate_order_uses_order_test_and_places_nothing(http, adapter):
    http.add(responses.POST, f"{API}/order/test", json=load("order.test.empty.json"))

    assert adapter.validate_order(limit_buy_sol()) == {}

    [call] = http.calls
    assert urlsplit(call.request.url).path == "/api/v3/order/test"
    assert_signed(call.request)
    assert params_of(call.request)["price"] == "15.5"
    assert "computeCommissionRates" not in params_of(call.request)


def test_validate_order_can_ask_for_the_commission_rates(http, adapter):
    http.add(
        responses.POST, f"{API}/order/test", json=load("order.test.computeCommissionRates.json")
    )

    answer = adapter.validate_order(market_sell(), compute_commission_rates=True)

    assert params_of(http.calls[0].request)["computeCommissionRates"] == "true"
    assert answer["standardCommissionForOrder"]["taker"] == "0.00000114"
    assert answer["discount"]["discountAsset"] == "BNB"


def test_query_order_asks_by_client_order_id(http, adapter):
    http.add(responses.GET, ORDER_URL, json=load("order.query.json"))

    result = adapter.query_order("LTCBTC", "myOrder1")

    [call] = http.calls
    assert_signed(call.request)
    sent = params_of(call.request)
    assert (sent["symbol"], sent["origClientOrderId"]) == ("LTCBTC", "myOrder1")
    assert result.client_order_id == "myOrder1"
    assert result.status is OrderStatus.NEW
    assert (result.orig_quantity, result.executed_quantity) == (Decimal("1.0"), Decimal("0"))
    assert result.transact_time == datetime(2017, 7, 12, 2, 41, 59, 559000, tzinfo=UTC)
    # Nothing executed, so no trades to look up (the one call above is all there was).
    assert (result.fills, result.fills_error) == ((), None)


def test_a_filled_order_is_queried_with_its_trades_and_their_commissions(http, adapter):
    client_order_id = client_order_id_for("signal-42")
    http.add(responses.GET, ORDER_URL, json=filled_query_for(client_order_id))
    http.add(responses.GET, MY_TRADES_URL, json=trades_of_filled_query())

    result = adapter.query_order("BTCUSDT", client_order_id)

    [trades] = calls_to(http, "GET", MY_TRADES_URL)
    assert_signed(trades.request)
    sent = params_of(trades.request)
    # By the exchange's order id, which GET /api/v3/order answered with; 1000 is the most a
    # page holds, the default 500.
    assert (sent["symbol"], sent["orderId"], sent["limit"]) == ("BTCUSDT", "13464", "1000")
    assert result.fills == FILLED_QUERY_FILLS
    assert result.fills_error is None
    assert result.executed_quantity == sum(f.quantity for f in result.fills)


def test_trades_are_read_from_the_documented_answer():
    [fill] = parse_trades(load("myTrades.doc-example.json"))

    assert fill == ExchangeFill(
        Decimal("4.00000100"), Decimal("12"), Decimal("10.1"), "BNB", trade_id="28457"
    )


def test_when_the_trades_cannot_be_read_the_query_says_why_and_has_no_fills(http, adapter, caplog):
    client_order_id = client_order_id_for("signal-42")
    http.add(responses.GET, ORDER_URL, json=filled_query_for(client_order_id))
    add_error(http, responses.GET, MY_TRADES_URL, "error.-1003.429.json")

    with caplog.at_level(logging.WARNING):
        result = adapter.query_order("BTCUSDT", client_order_id)

    # The totals are still the answer; the caller knows the trades are missing, and why.
    assert result.status is OrderStatus.FILLED
    assert result.executed_quantity == Decimal("0.000455")
    assert result.fills == ()
    assert "code=-1003" in result.fills_error
    assert "trades of order 13464" in result.fills_error
    assert "totals are all there is" in caplog.text


def test_trades_that_do_not_add_up_to_the_executed_quantity_are_not_taken(http, adapter):
    client_order_id = client_order_id_for("signal-42")
    http.add(responses.GET, ORDER_URL, json=filled_query_for(client_order_id))
    # The trade list can lag the order: only the first trade is there yet.
    http.add(responses.GET, MY_TRADES_URL, json=trades_of_filled_query()[:1])

    result = adapter.query_order("BTCUSDT", client_order_id)

    assert result.fills == ()
    assert result.fills_error == "its trades add up to 0.00030000 of the 0.00045500 executed"


def test_cancel_returns_the_cancelled_orders_own_client_id(http, adapter):
    http.add(responses.DELETE, ORDER_URL, json=load("order.cancel.json"))

    result = adapter.cancel_order("LTCBTC", "myOrder1")

    [call] = http.calls
    assert call.request.method == "DELETE"
    assert_signed(call.request)
    assert params_of(call.request)["origClientOrderId"] == "myOrder1"
    # Binance's clientOrderId here ("cancelMyOrder1") names the cancel request, not the order.
    assert result.client_order_id == "myOrder1"
    assert result.status is OrderStatus.CANCELED
    assert not result.is_open


def test_open_orders_for_all_symbols_and_for_one(http, adapter):
    http.add(responses.GET, f"{API}/openOrders", json=load("openOrders.json"))
    http.add(responses.GET, f"{API}/openOrders", json=load("openOrders.json"))

    everywhere = adapter.open_orders()
    on_ltcbtc = adapter.open_orders("LTCBTC")

    first, second = (params_of(c.request) for c in http.calls)
    assert "symbol" not in first
    assert second["symbol"] == "LTCBTC"
    assert everywhere == on_ltcbtc
    assert [(o.client_order_id, o.status, o.symbol) for o in everywhere] == [
        ("myOrder1", OrderStatus.NEW, "LTCBTC")
    ]


def test_balances_are_read_from_the_account_as_decimals(http, adapter):
    http.add(responses.GET, f"{API}/account", json=load("account.json"))

    balances = adapter.balances()

    [call] = http.calls
    assert_signed(call.request)
    assert params_of(call.request)["omitZeroBalances"] == "true"
    assert [(b.asset, b.free, b.locked) for b in balances] == [
        ("BTC", Decimal("4723846.89208129"), Decimal("0")),
        ("LTC", Decimal("4763368.68006011"), Decimal("0")),
    ]


def test_exchange_info_asks_only_for_the_wanted_symbols(http, adapter):
    captured = load("exchangeInfo.testnet.BTCUSDT-ETHUSDT-SOLUSDT.json")
    http.add(responses.GET, f"{API}/exchangeInfo", json=captured)

    info = adapter.exchange_info(["BTCUSDT", "ETHUSDT", "SOLUSDT"])

    [call] = http.calls
    assert json.loads(params_of(call.request)["symbols"]) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert "signature" not in params_of(call.request)
    assert info == captured


@pytest.mark.parametrize(
    ("mode", "host"),
    [
        ("testnet", "testnet.binance.vision"),
        ("demo", "demo-api.binance.com"),
        ("live", "api.binance.com"),
    ],
)
def test_each_mode_talks_to_its_own_binance(http, mode, host):
    http.add(responses.GET, f"https://{host}/api/v3/ping", json=load("ping.json"))

    BinanceAdapter(BinanceConfig(mode=mode, api_key=KEY, api_secret=SECRET)).ping()

    assert len(http.calls) == 1


def test_the_adapter_implements_the_exchange_interface(adapter):
    assert isinstance(adapter, ExchangeAdapter)


# -- error mapping --------------------------------------------------------------------------------


def _validate(adapter):
    adapter.validate_order(market_sell())


def _query(adapter):
    adapter.query_order("BTCUSDT", client_order_id_for("signal-42"))


def _cancel(adapter):
    adapter.cancel_order("BTCUSDT", client_order_id_for("signal-42"))


OPERATIONS = {
    "validate": (responses.POST, f"{API}/order/test", _validate),
    "query": (responses.GET, ORDER_URL, _query),
    "cancel": (responses.DELETE, ORDER_URL, _cancel),
}


@pytest.mark.parametrize(
    ("fixture", "operation", "code", "retryable", "ambiguous", "retry_after"),
    [
        ("error.-1003.418.json", "validate", -1003, True, False, 720),
        ("error.-1003.418.real-2022.json", "query", -1003, True, False, None),
        ("error.-1003.429.json", "validate", -1003, True, False, 35),
        ("error.-1007.json", "query", -1007, True, False, None),
        ("error.-1007.json", "cancel", -1007, True, True, None),
        ("error.-1013.LOT_SIZE.json", "validate", -1013, False, False, None),
        ("error.-1013.MARKET_LOT_SIZE.json", "validate", -1013, False, False, None),
        ("error.-1013.NOTIONAL.json", "validate", -1013, False, False, None),
        ("error.-1013.PRICE_FILTER.json", "validate", -1013, False, False, None),
        ("error.-1021.json", "validate", -1021, True, False, None),
        ("error.-1021.ahead.json", "cancel", -1021, True, False, None),
        ("error.-1100.json", "validate", -1100, False, False, None),
        ("error.-1102.json", "validate", -1102, False, False, None),
        ("error.-1121.json", "query", -1121, False, False, None),
        ("error.-2010.insufficient-balance.json", "validate", -2010, False, False, None),
        ("error.-2011.unknown-order.json", "cancel", -2011, False, False, None),
        ("error.-2013.json", "query", -2013, False, False, None),
    ],
)
def test_recorded_errors_map_to_exchange_errors(
    http, adapter, fixture, operation, code, retryable, ambiguous, retry_after
):
    method, url, call = OPERATIONS[operation]
    recorded = add_error(http, method, url, fixture)
    if code == -1021:
        http.add(responses.GET, f"{API}/time", json=load("time.json"))

    with pytest.raises(ExchangeError) as raised:
        call(adapter)

    error = raised.value
    assert error.code == code
    assert error.http_status == recorded["http_status"]
    assert error.retryable is retryable
    assert error.ambiguous is ambiguous
    assert error.retry_after == retry_after
    assert recorded["body"]["msg"] in error.message


@pytest.mark.parametrize(
    ("status", "retryable", "ambiguous"),
    [(502, True, True), (503, True, True), (403, False, False)],
)
def test_answers_that_are_not_binance_json_are_mapped_by_http_status(
    http, adapter, status, retryable, ambiguous
):
    http.add(responses.DELETE, ORDER_URL, body="<html>nope</html>", status=status)

    with pytest.raises(ExchangeError) as raised:
        _cancel(adapter)

    assert raised.value.code is None
    assert (raised.value.retryable, raised.value.ambiguous) == (retryable, ambiguous)


def test_a_timestamp_error_resyncs_the_clock_so_the_retry_can_pass(http, adapter):
    add_error(http, responses.POST, f"{API}/order/test", "error.-1021.json")
    http.add(responses.GET, f"{API}/time", json=load("time.json"))
    http.add(responses.POST, f"{API}/order/test", json={})

    with pytest.raises(ExchangeError):
        _validate(adapter)
    _validate(adapter)

    server_ms = load("time.json")["serverTime"]
    retry = http.calls[-1].request
    assert abs(int(params_of(retry)["timestamp"]) - server_ms) < 60_000
    assert (
        hmac.new(
            SECRET.encode(), raw_params(retry).rpartition("&signature=")[0].encode(), "sha256"
        ).hexdigest()
        == params_of(retry)["signature"]
    )


# -- reconciliation -------------------------------------------------------------------------------


def test_reconcile_reports_known_orders_and_open_orders_the_platform_does_not_know(http, adapter):
    filled_id = client_order_id_for("signal-filled")
    vanished_id = client_order_id_for("signal-never-placed")
    open_rows = load("openOrders.json")
    from_the_web_ui = {**open_rows[0], "orderId": 2, "clientOrderId": "web_3kLq9"}
    http.add(responses.GET, f"{API}/openOrders", json=[*open_rows, from_the_web_ui])
    http.add(responses.GET, ORDER_URL, json=filled_query_for(filled_id))
    http.add(responses.GET, MY_TRADES_URL, json=trades_of_filled_query())
    add_error(http, responses.GET, ORDER_URL, "error.-2013.json")

    results = adapter.reconcile(
        {"myOrder1": "LTCBTC", filled_id: "BTCUSDT", vanished_id: "ETHUSDT"}
    )

    assert [(r.client_order_id, r.status) for r in results] == [
        ("myOrder1", OrderStatus.NEW),
        (filled_id, OrderStatus.FILLED),
        ("web_3kLq9", OrderStatus.NEW),
    ]
    assert results[1].fills == FILLED_QUERY_FILLS
    # The still-open order is not looked up again; the other two are, by their own symbol.
    lookups = [params_of(c.request) for c in calls_to(http, "GET", ORDER_URL)]
    assert [(p["origClientOrderId"], p["symbol"]) for p in lookups] == [
        (filled_id, "BTCUSDT"),
        (vanished_id, "ETHUSDT"),
    ]


def test_reconcile_fails_whole_when_a_lookup_fails(http, adapter):
    http.add(responses.GET, f"{API}/openOrders", json=[])
    add_error(http, responses.GET, ORDER_URL, "error.-1003.429.json")

    with pytest.raises(ExchangeError) as raised:
        adapter.reconcile({client_order_id_for("signal-1"): "BTCUSDT"})

    assert raised.value.code == -1003


# -- configuration --------------------------------------------------------------------------------

ENV = {"BINANCE_MODE": "testnet", "BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET}


def test_config_reads_the_environment():
    config = BinanceConfig.from_env({**ENV, "BINANCE_MODE": "Demo", "BINANCE_RECV_WINDOW": "7000"})
    assert (config.mode, config.api_key, config.api_secret) == ("demo", KEY, SECRET)
    assert config.recv_window == 7000


@pytest.mark.parametrize("missing", ["BINANCE_MODE", "BINANCE_API_KEY", "BINANCE_API_SECRET"])
def test_config_names_the_missing_variable(missing):
    with pytest.raises(ValueError, match=f"^{missing} is required") as raised:
        BinanceConfig.from_env({**ENV, missing: "  "})
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("BINANCE_MODE", "mainnet"), ("BINANCE_RECV_WINDOW", "60001"), ("BINANCE_RECV_WINDOW", "5s")],
)
def test_config_names_the_bad_variable(name, value):
    with pytest.raises(ValueError, match=f"^{name}=") as raised:
        BinanceConfig.from_env({**ENV, name: value})
    assert SECRET not in str(raised.value)


def test_the_secret_never_shows_in_reprs():
    config = BinanceConfig.from_env(ENV)
    adapter = BinanceAdapter(config)
    assert SECRET not in repr(config) and KEY not in repr(config)
    assert SECRET not in repr(adapter)


def test_the_recv_window_is_what_binance_receives(http):
    config = BinanceConfig(mode="testnet", api_key=KEY, api_secret=SECRET, recv_window=3000)
    http.add(responses.GET, f"{API}/account", json=load("account.json"))

    BinanceAdapter(config).balances()

    assert params_of(http.calls[0].request)["recvWindow"] == "3000"


# -- client order ids and requests ----------------------------------------------------------------


@given(st.text(min_size=1), st.integers(min_value=0, max_value=MAX_ATTEMPT))
def test_client_order_ids_are_valid_for_binance_and_deterministic(correlation_id, attempt):
    client_order_id = client_order_id_for(correlation_id, attempt)
    assert CLIENT_ORDER_ID_RE.fullmatch(client_order_id)
    assert re.fullmatch(r"^[a-zA-Z0-9-_]{1,36}$", client_order_id)
    assert client_order_id_for(correlation_id, attempt) == client_order_id


@given(st.text(min_size=1), st.text(min_size=1), st.integers(0, 5), st.integers(0, 5))
def test_different_correlation_ids_or_attempts_give_different_client_order_ids(a, b, i, j):
    assume((a, i) != (b, j))
    assert client_order_id_for(a, i) != client_order_id_for(b, j)


def test_client_order_id_refuses_an_empty_correlation_id_or_bad_attempt():
    with pytest.raises(ValueError):
        client_order_id_for("")
    with pytest.raises(ValueError):
        client_order_id_for("signal-1", -1)
    with pytest.raises(ValueError):
        client_order_id_for("signal-1", MAX_ATTEMPT + 1)


@pytest.mark.parametrize(
    "changes",
    [
        {"order_type": "LIMIT"},
        {"price": Decimal("1")},
        {"quantity": Decimal("0")},
        {"quantity": 0.1},
        {"side": "buy"},
        {"client_order_id": "has space"},
        {"client_order_id": "x" * 37},
    ],
)
def test_malformed_order_requests_are_refused(changes):
    fields = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "order_type": "MARKET",
        "quantity": Decimal("0.001"),
        "client_order_id": client_order_id_for("signal-1"),
    }
    with pytest.raises(ValueError):
        OrderRequest(**{**fields, **changes})
