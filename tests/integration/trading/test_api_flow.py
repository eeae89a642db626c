"""The trading API end to end: the web side in this process, exec-risk in real worker processes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.integration.trading.conftest import SYMBOLS
from tests.support.processes import wait_for
from tests.support.trading_api import metric, post_signal, settled
from trading.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _workers(service_workers):
    return service_workers


def test_signals_open_and_close_positions_on_three_symbols_at_once(api, market):
    buys = [post_signal(api, symbol=s) for s in SYMBOLS]
    assert all(set(b) >= {"id", "correlation_id"} for b in buys)
    filled = [settled(api, b["id"], "filled", "denied", "rejected") for b in buys]
    assert [f["status"] for f in filled] == ["filled"] * 3, filled

    positions = api.get("/api/v1/positions", {"status": "open"}).json()
    assert sorted(p["symbol"] for p in positions) == sorted(SYMBOLS)
    for position in positions:
        assert Decimal(position["quantity"]) > 0
        assert position["mark_price"] is not None

    sells = [
        post_signal(api, symbol=p["symbol"], side="SELL", quantity=p["quantity"], notional=None)
        for p in positions
    ]
    for sell in sells:
        assert settled(api, sell["id"], "filled", "denied", "rejected")["status"] == "filled"

    assert api.get("/api/v1/positions", {"status": "open"}).json() == []
    closed = api.get("/api/v1/positions", {"status": "closed"}).json()
    assert len(closed) == 3
    for position in closed:
        fills = Order.objects.filter(symbol=position["symbol"]).values_list(
            "fills__price", flat=True
        )
        assert len(fills) == 2
        assert Decimal(position["fees_paid"]) > 0

    portfolio = api.get("/api/v1/portfolio").json()
    assert portfolio["open_positions"] == 0
    assert Decimal(portfolio["cash"]) == Decimal(portfolio["starting_cash"]) + sum(
        Decimal(p["net_realized_pnl"]) for p in closed
    )


def test_the_event_log_replays_a_signals_flow_in_order(api, market):
    buy = post_signal(api, symbol="ETHUSDT")
    settled(api, buy["id"], "filled")
    events = api.get("/api/v1/events", {"correlation_id": buy["correlation_id"]}).json()["events"]
    types = [e["type"] for e in events]
    assert types[:5] == [
        "signal.generated",
        "order.requested",
        "order.submitted",
        "order.filled",
        "position.opened",
    ], types
    stream_ids = [e["stream_id"] for e in events]
    assert stream_ids == sorted(stream_ids, key=lambda s: tuple(map(int, s.split("-"))))
    only_fills = api.get("/api/v1/events", {"type": "order.filled", "limit": 1000}).json()
    assert buy["correlation_id"] in {e["correlation_id"] for e in only_fills["events"]}


def test_a_halt_through_the_api_denies_the_next_signal_with_trading_halted(api, client, market):
    before = metric(client, "exec-risk", "exec_risk_service_orders_denied_total",
                    reason="TRADING_HALTED")  # fmt: skip
    halted = api.post("/api/v1/risk/halt", {"reason": "drill"}, format="json")
    assert halted.status_code == 200 and halted.json()["state"] == "HALTED"
    assert api.get("/api/v1/risk").json()["history"][0]["actor"] == "olivia"

    denied = settled(api, post_signal(api)["id"], "denied", "filled")
    assert (denied["status"], denied["reason"]) == ("denied", "TRADING_HALTED")
    assert denied["orders"] == []
    after = metric(client, "exec-risk", "exec_risk_service_orders_denied_total",
                   reason="TRADING_HALTED")  # fmt: skip
    assert after == before + 1
    assert metric(client, "exec-risk", "exec_risk_service_trading_state", state="HALTED") == 1

    resumed = api.post("/api/v1/risk/resume", {}, format="json")
    assert resumed.json()["state"] == "ACTIVE"
    assert settled(api, post_signal(api)["id"], "filled", "denied")["status"] == "filled"


def test_a_redelivered_signal_task_places_no_second_order(api, market):
    from trading.execution.tasks import process_signal

    signal = post_signal(api, symbol="SOLUSDT")
    for _ in range(3):
        process_signal.delay(signal["id"])
    settled(api, signal["id"], "filled")
    body = api.get(f"/api/v1/signals/{signal['id']}").json()
    assert len(body["orders"]) == 1
    assert len(body["orders"][0]["fills"]) == 1


def test_waiting_for_a_signal_answers_its_fate_within_the_rpc_deadline(api, market, settings):
    settings.RPC_TIMEOUT_SECONDS = 5
    response = api.post("/api/v1/signals?wait=1", {"symbol": "BTCUSDT", "side": "BUY",
                        "confidence": 0.95, "notional": "500"}, format="json")  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "filled"


def test_exec_risk_metrics_and_health_describe_the_book(api, client, market):
    executed = metric(client, "exec-risk", "exec_risk_service_orders_executed_total")
    opened = metric(client, "exec-risk", "exec_risk_service_positions_opened_total")
    settled(api, post_signal(api)["id"], "filled")
    assert metric(client, "exec-risk", "exec_risk_service_orders_executed_total") == executed + 1
    assert metric(client, "exec-risk", "exec_risk_service_positions_opened_total") == opened + 1
    assert metric(client, "exec-risk", "exec_risk_service_open_positions") == 1
    assert metric(client, "exec-risk", "exec_risk_service_daily_trades") == 1
    latency = metric(client, "exec-risk", "exec_risk_service_order_latency_seconds_count")
    assert latency >= 1

    health = client.get("/services/exec-risk/health").json()
    assert health["checks"]["exchange"]["status"] == "pass"
    assert health["checks"]["symbol_rules"]["status"] == "pass"
    assert health["checks"]["trading"]["open_positions"] == 1
    assert health["checks"]["trading"]["trading_state"] == "ACTIVE"


def test_an_emergency_stop_with_flatten_closes_every_position_through_the_workers(api, market):
    for symbol in ("BTCUSDT", "SOLUSDT"):
        settled(api, post_signal(api, symbol=symbol)["id"], "filled")
    halted = api.post("/api/v1/risk/halt", {"flatten": True, "reason": "drill"}, format="json")
    assert halted.json()["state"] == "HALTED"
    wait_for(
        lambda: api.get("/api/v1/positions", {"status": "open"}).json() == [],
        20,
        "every position to be flattened",
    )
    flattening = api.get("/api/v1/orders").json()
    assert sum(1 for o in flattening if o["purpose"] == "flatten") == 2
    assert all(o["status"] == "FILLED" for o in flattening)
