"""The start-up reconciliation compares the ledger's balances with Binance's account, at the HTTP
seam (``responses`` answering with the recorded payloads of tests/fixtures/binance), and with the
paper exchange's book."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
import responses

from tests.support.exchange_answers import new_order, report, trade
from tests.support.signals import saved_signal
from trading.events.replay import read_window
from trading.execution import recovery, signals, venue
from trading.ledger import services as ledger
from trading.models import Signal
from trading.risk import services as risk

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"
API = "https://testnet.binance.vision/api/v3"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def binance_account(**balances: tuple[str, str]) -> dict:
    """The documented GET /api/v3/account answer with ``balances`` (asset: (free, locked)).

    Changed from account.json: the balances (its BTC and LTC rows) replaced by these and an LTC
    row, which the platform does not trade and must leave alone."""
    rows = [{"asset": a, "free": free, "locked": locked} for a, (free, locked) in balances.items()]
    return {**load("account.json"), "balances": [*rows, {"asset": "LTC", "free": "7",
                                                         "locked": "0"}]}  # fmt: skip


@pytest.fixture
def binance(settings, monkeypatch, market):
    settings.EXCHANGE = "binance"
    monkeypatch.setenv("BINANCE_MODE", "testnet")
    monkeypatch.setenv("BINANCE_API_KEY", "test-key-7f3a")
    monkeypatch.setenv("BINANCE_API_SECRET", "test-secret-do-not-leak-91c2")
    venue.venue_adapter.cache_clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        http.add(responses.GET, f"{API}/ping", json=load("ping.json"))
        http.add(responses.GET, f"{API}/exchangeInfo",
                 json=load("exchangeInfo.testnet.BTCUSDT-ETHUSDT-SOLUSDT.json"))  # fmt: skip
        http.add(responses.GET, f"{API}/openOrders", json=[])
        yield http
    venue.venue_adapter.cache_clear()


@pytest.fixture
def alerts(redis_server):
    """The BALANCE_MISMATCH alerts raised during the test (the event log outlives a test)."""
    since = datetime.now(UTC)

    def raised() -> list[dict]:
        return [
            event.payload
            for _, event in read_window(types=["risk.alert"], since=since, limit=1000)
            if event.payload["reason"] == "BALANCE_MISMATCH"
        ]

    return raised


def test_binances_cash_wins_and_a_coin_it_holds_beyond_the_ledger_is_reported_only(binance, alerts):
    account = risk.get_account()
    assert ledger.balances(account)["USDT"].free == D("100000")
    binance.add(responses.GET, f"{API}/account",
                json=binance_account(USDT=("60000.5", "618"), BTC=("0.5", "0")))  # fmt: skip

    result = recovery.reconcile_exchange(startup=True)

    assert result["balances_mismatched"] == ["BTC", "USDT"]
    [alert] = alerts()
    assert alert["account"] == "main"
    assert alert["balances"]["USDT"] == {"ledger": "100000", "exchange": "60618.5",
                                         "followed": True}  # fmt: skip
    assert alert["balances"]["BTC"]["followed"] is False
    assert "LTC" not in alert["balances"]
    # The cash is Binance's now, as a transfer: no PnL, and the fills still agree with it.
    assert ledger.balances(account)["USDT"].free == D("60618.5")
    assert ledger.account_cash(account) == ledger.ledger_cash(account) == D("60618.5")
    assert ledger.verify_balances() == []
    # BTC the platform did not buy is not the ledger's to sell.
    assert "BTC" not in ledger.balances(account)
    sell = saved_signal(account, symbol="BTCUSDT", side="SELL", confidence=D("0.9"),
                        quantity=D("0.1"))  # fmt: skip
    denied = signals.process_signal(sell.pk)
    assert (denied.status, denied.reason) == (Signal.Status.DENIED, "INSUFFICIENT_BALANCE")


def test_balances_that_agree_with_binance_raise_nothing(binance, alerts):
    account = risk.get_account()
    report(new_order(account, "BTCUSDT", "BUY", "0.1"), trade("0.1", "60000", "6"))
    binance.add(responses.GET, f"{API}/account",
                json=binance_account(USDT=("93994", "0"), BTC=("0.1", "0")))  # fmt: skip

    assert recovery.reconcile_exchange(startup=True)["balances_mismatched"] == []
    assert alerts() == []


def test_the_paper_exchange_is_checked_against_the_ledger_and_not_followed(
    market, settings, alerts
):
    settings.EXCHANGE = "paper"
    account = risk.get_account()
    venue.exchange(account).deposit("SOL", D("3"))  # a book that drifted from the ledger

    result = recovery.reconcile_exchange(startup=True)

    assert result["balances_mismatched"] == ["SOL"]
    [alert] = alerts()
    assert alert["balances"]["SOL"] == {"ledger": "0", "exchange": "3", "followed": False}
    assert "SOL" not in ledger.balances(account)
