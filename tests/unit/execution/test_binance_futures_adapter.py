"""The Binance USDⓈ-M futures adapter, driving python-binance's real ``Client`` against Binance's
documented futures answers (tests/fixtures/binance/futures/SOURCE.md).

``responses`` stands in for Binance at the requests layer: each test sees the request
python-binance puts on the wire and the adapter's reading of the answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from trading.execution.adapter import (
    ExchangeError,
    OrderRequest,
    OrderStatus,
    client_order_id_for,
)
from trading.execution.binance import BinanceConfig
from trading.execution.binance_futures import BinanceFuturesAdapter
from trading.marketdata.symbols import parse_exchange_info

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance" / "futures"
FAPI = "https://testnet.binancefuture.com/fapi"
ORDER_URL = f"{FAPI}/v1/order"
TRADES_URL = f"{FAPI}/v1/userTrades"
KEY = "test-key-7f3a"
SECRET = "test-secret-do-not-leak-91c2"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def params_of(request: requests.PreparedRequest) -> dict[str, str]:
    raw = urlsplit(request.url).query if request.method == "GET" else request.body
    raw = raw.decode() if isinstance(raw, bytes) else (raw or "")
    return dict(parse_qsl(raw, keep_blank_values=True))


def assert_signed(request: requests.PreparedRequest) -> None:
    raw = urlsplit(request.url).query if request.method == "GET" else request.body
    raw = raw.decode() if isinstance(raw, bytes) else raw
    signed, _, signature = raw.rpartition("&signature=")
    assert request.headers["X-MBX-APIKEY"] == KEY
    assert signature == hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def adapter() -> BinanceFuturesAdapter:
    config = BinanceConfig(mode="testnet", api_key=KEY, api_secret=SECRET)
    return BinanceFuturesAdapter(config, lookup_delay=0, sleep=lambda _: None)


def market(side: str = "SELL", *, reduce_only: bool = False, quantity: str = "0.002"):
    return OrderRequest(
        symbol="BTCUSDT",
        side=side,
        order_type="MARKET",
        quantity=Decimal(quantity),
        client_order_id=client_order_id_for("signal-f-1"),
        reduce_only=reduce_only,
    )


def filled_answer(request: OrderRequest) -> dict:
    """The documented answer, for our order and as it reads once it has filled."""
    return {
        **load("order.market.result.json"),
        "clientOrderId": request.client_order_id,
        "orderId": 25851813,
        "side": request.side,
        "status": "FILLED",
        "origQty": "0.002",
        "executedQty": "0.002",
        "cumQty": "0.002",
        "cumQuote": "15.63802",
        "avgPrice": "7819.01",
        "reduceOnly": request.reduce_only,
    }


def test_an_order_goes_to_the_futures_endpoint_with_the_correlation_ids_client_order_id(
    http, adapter
):
    request = market(reduce_only=True)
    http.add(responses.POST, ORDER_URL, json=filled_answer(request))
    http.add(responses.GET, TRADES_URL, json=load("userTrades.json"))

    result = adapter.place_order(request)

    sent = http.calls[0].request
    assert_signed(sent)
    params = params_of(sent)
    assert params["newClientOrderId"] == client_order_id_for("signal-f-1")
    assert params["reduceOnly"] == "true"
    assert params["type"] == "MARKET"
    assert params["quantity"] == "0.002"
    assert params["newOrderRespType"] == "RESULT"
    assert result.status is OrderStatus.FILLED
    assert result.cumulative_quote == Decimal("15.63802")
    assert result.average_price == Decimal("7819.01")
    # The answer has no fills: they come from the order's trades, commission as a cost.
    assert params_of(http.calls[1].request)["orderId"] == "25851813"
    [fill] = result.fills
    assert (fill.price, fill.quantity, fill.commission) == (
        Decimal("7819.01"),
        Decimal("0.002"),
        Decimal("0.07819010"),
    )
    assert fill.trade_id == "698759"


def test_an_order_that_may_open_sends_no_reduce_only_flag(http, adapter):
    http.add(responses.POST, ORDER_URL, json=load("order.market.result.json"))

    result = adapter.place_order(market("BUY"))

    assert "reduceOnly" not in params_of(http.calls[0].request)
    assert result.status is OrderStatus.NEW
    assert result.fills == ()


def test_a_refused_reduce_only_order_is_a_permanent_error(http, adapter):
    recorded = load("error.-2022.reduce-only-rejected.json")
    http.add(responses.POST, ORDER_URL, json=recorded["body"], status=recorded["http_status"])

    with pytest.raises(ExchangeError) as caught:
        adapter.place_order(market(reduce_only=True))

    assert caught.value.code == -2022
    assert not caught.value.retryable and not caught.value.ambiguous


def test_after_a_timeout_the_order_is_looked_up_on_the_futures_endpoint(http, adapter):
    request = market()
    http.add(responses.POST, ORDER_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    http.add(responses.GET, ORDER_URL, json=filled_answer(request))
    http.add(responses.GET, TRADES_URL, json=load("userTrades.json"))

    result = adapter.place_order(request)

    lookup = http.calls[1].request
    assert params_of(lookup)["origClientOrderId"] == request.client_order_id
    assert result.status is OrderStatus.FILLED
    assert len(result.fills) == 1
    assert len([c for c in http.calls if c.request.method == "POST"]) == 1


def test_leverage_is_set_per_symbol(http, adapter):
    http.add(responses.POST, f"{FAPI}/v1/leverage", json=load("leverage.json"))

    assert adapter.set_leverage("BTCUSDT", 21) == 21

    sent = params_of(http.calls[0].request)
    assert (sent["symbol"], sent["leverage"]) == ("BTCUSDT", "21")
    assert_signed(http.calls[0].request)


def test_a_leverage_above_the_brackets_is_refused_permanently(http, adapter):
    recorded = load("error.-4028.leverage-not-valid.json")
    http.add(
        responses.POST, f"{FAPI}/v1/leverage", json=recorded["body"], status=recorded["http_status"]
    )

    with pytest.raises(ExchangeError) as caught:
        adapter.set_leverage("BTCUSDT", 200)

    assert caught.value.code == -4028 and not caught.value.retryable


def test_the_account_gives_wallet_margin_and_available_balances(http, adapter):
    http.add(responses.GET, f"{FAPI}/v2/account", json=load("account.v2.json"))

    account = adapter.account()

    assert account.wallet_balance == Decimal("23.72469206")
    assert account.margin_balance == Decimal("23.72469206")
    assert account.available_balance == Decimal("23.72469206")
    assert account.maintenance_margin == 0
    assert account.leverages == {"BTCUSDT": 100}


def test_balances_split_the_wallet_into_available_and_held(http, adapter):
    http.add(responses.GET, f"{FAPI}/v3/balance", json=load("balance.v3.json"))

    [usdt] = adapter.balances()

    assert usdt.asset == "USDT"
    assert usdt.free == Decimal("23.72469206")
    assert usdt.total == Decimal("122607.35137903")


def test_positions_are_read_signed_with_margins_and_no_liquidation_price_for_zero(http, adapter):
    short = {**load("positionRisk.v3.json")[0], "symbol": "BTCUSDT", "positionAmt": "-0.010",
             "liquidationPrice": "71234.5"}  # fmt: skip
    flat = {**short, "symbol": "ETHUSDT", "positionAmt": "0.000"}
    http.add(
        responses.GET, f"{FAPI}/v3/positionRisk", json=[*load("positionRisk.v3.json"), short, flat]
    )

    ada, btc = adapter.positions()

    assert (ada.symbol, ada.quantity, ada.liquidation_price) == ("ADAUSDT", Decimal("30"), None)
    assert ada.maintenance_margin == Decimal("0.08004280")
    assert ada.unrealized_pnl == Decimal("0.76427700")
    assert (btc.quantity, btc.liquidation_price) == (Decimal("-0.010"), Decimal("71234.5"))


def test_leverage_brackets_come_back_as_the_ledgers_brackets(http, adapter):
    http.add(responses.GET, f"{FAPI}/v1/leverageBracket", json=load("leverageBracket.json"))

    brackets = adapter.leverage_brackets()["ETHUSDT"]

    assert brackets.max_leverage == 75
    assert brackets.maintenance_margin(Decimal("10000")) == Decimal("65")


def test_an_unreadable_bracket_answer_is_a_permanent_error(http, adapter):
    http.add(responses.GET, f"{FAPI}/v1/leverageBracket", json=[{"symbol": "ETHUSDT"}])

    with pytest.raises(ExchangeError) as caught:
        adapter.leverage_brackets()

    assert not caught.value.retryable


def test_futures_symbol_rules_read_like_spots_with_the_minimum_notional(http, adapter):
    http.add(responses.GET, f"{FAPI}/v1/exchangeInfo", json=load("exchangeInfo.json"))

    payload = adapter.exchange_info(["BLZUSDT", "XYZUSDT"])

    rules = parse_exchange_info(payload)["BLZUSDT"]
    assert rules.status == "TRADING"
    assert rules.tick_size == Decimal("0.0001")
    assert rules.step_size == Decimal("1")
    assert rules.min_notional == Decimal("5.0")


def test_exchange_info_leaves_out_symbols_not_asked_for(http, adapter):
    http.add(responses.GET, f"{FAPI}/v1/exchangeInfo", json=load("exchangeInfo.json"))

    assert adapter.exchange_info(["ETHUSDT"])["symbols"] == []


def test_open_orders_and_cancel_use_the_futures_endpoints(http, adapter):
    answer = {**load("order.market.result.json"), "status": "CANCELED"}
    http.add(responses.GET, f"{FAPI}/v1/openOrders", json=[load("order.market.result.json")])
    http.add(responses.DELETE, ORDER_URL, json=answer)

    [open_order] = adapter.open_orders()
    cancelled = adapter.cancel_order("BTCUSDT", "testOrder")

    assert open_order.client_order_id == "testOrder" and open_order.is_open
    assert cancelled.status is OrderStatus.CANCELED
    assert params_of(http.calls[1].request)["origClientOrderId"] == "testOrder"
