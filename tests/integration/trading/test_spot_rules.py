"""Binance spot's rules through the API, with exec-risk in real worker processes: nothing sold
that is not held, nothing bought beyond the free cash with its fee, leverage 1; the ledger and
the paper exchange it trades on agree on every balance."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

import pytest

from tests.support.trading_api import post_signal, settled
from trading.execution import venue
from trading.ledger import services as ledger
from trading.models import Account, Position, RiskLimits
from trading.risk import services as risk

pytestmark = pytest.mark.django_db(transaction=True)

DENIED = ("denied", "filled", "rejected")


@pytest.fixture(autouse=True)
def _workers(service_workers):
    return service_workers


@pytest.fixture(autouse=True)
def _wide_limits(db):
    """Exposure limits out of the way: the balances are what these tests are about."""
    RiskLimits.objects.update_or_create(
        symbol="", defaults={"max_position_notional": 10**6, "max_total_exposure": 10**6}
    )


def account_with(cash: Decimal | str) -> Account:
    """The operator's account, starting with ``cash`` USDT (before its first order)."""
    account = risk.get_account()
    Account.objects.filter(pk=account.pk).update(starting_cash=cash, peak_equity=cash)
    account.refresh_from_db()
    return account


def denial(api, **fields) -> tuple[str, str]:
    body = settled(api, post_signal(api, **fields)["id"], *DENIED)
    return body["status"], body["reason"]


def events(api, correlation_id) -> list[dict]:
    return api.get("/api/v1/events", {"correlation_id": correlation_id}).json()["events"]


def free(api) -> dict[str, Decimal]:
    return {
        a: Decimal(b["free"]) for a, b in api.get("/api/v1/portfolio").json()["balances"].items()
    }


def test_a_sell_of_what_is_not_held_is_denied_insufficient_balance(api, market):
    account_with("60618")

    assert denial(api, side="SELL", quantity="0.03", notional=None) == (
        "denied",
        "INSUFFICIENT_BALANCE",
    )

    assert not Position.objects.exists()
    assert free(api) == {"USDT": Decimal("60618")}


def test_a_sell_of_more_than_is_held_is_denied_and_what_is_held_stays(api, market):
    account_with("60618")
    bought = settled(api, post_signal(api, symbol="ETHUSDT", quantity="2.9693",
                                      notional=None)["id"], *DENIED)  # fmt: skip
    assert bought["status"] == "filled", bought

    assert denial(api, symbol="ETHUSDT", side="SELL", quantity="3.9693", notional=None) == (
        "denied",
        "INSUFFICIENT_BALANCE",
    )
    assert free(api)["ETH"] == Decimal("2.9693")
    assert Position.objects.get(symbol="ETHUSDT").quantity == Decimal("2.9693")


def test_a_buy_whose_fee_the_free_cash_cannot_pay_is_denied(api, market):
    price = market["BTCUSDT"].close
    quantity = Decimal("0.5")
    # Pays the notional, and half the taker fee.
    cash = quantity * price * (1 + ledger.fee_rate() / 2)
    account_with(cash)

    assert denial(api, quantity=str(quantity), notional=None) == ("denied", "INSUFFICIENT_BALANCE")
    assert denial(api, quantity="0.6", notional=None) == ("denied", "INSUFFICIENT_BALANCE")
    assert free(api) == {"USDT": cash}


def test_a_buy_the_ledger_pays_for_but_the_exchange_does_not_is_rejected_with_the_same_reason(
    api, market
):
    # The checks price a buy at the mark; the paper exchange at the mark moved by its slippage.
    price = market["BTCUSDT"].close
    quantity = Decimal("0.05")
    account_with(quantity * price * (1 + ledger.fee_rate()) + Decimal("0.01"))

    body = settled(api, post_signal(api, quantity=str(quantity), notional=None)["id"], *DENIED)

    assert (body["status"], body["reason"]) == ("rejected", "INSUFFICIENT_BALANCE")
    [order] = body["orders"]
    assert order["status"] == "REJECTED"
    assert "insufficient balance" in order["error"]
    assert "order.rejected" in [e["type"] for e in events(api, body["correlation_id"])]


def test_close_position_sells_what_is_held_and_files_the_close_under_its_signal(api, market):
    account_with("100000")
    opened = settled(api, post_signal(api, symbol="SOLUSDT")["id"], *DENIED)
    assert opened["status"] == "filled", opened
    held = Position.objects.get(symbol="SOLUSDT").quantity

    closing = post_signal(api, symbol="SOLUSDT", side="SELL", close_position=True, notional=None)
    body = settled(api, closing["id"], *DENIED)

    assert body["status"] == "filled", body
    [order] = body["orders"]
    assert (order["side"], Decimal(order["quantity"])) == ("SELL", held)
    assert free(api).get("SOL", Decimal(0)) == 0
    story = events(api, closing["correlation_id"])
    [closed] = [e for e in story if e["type"] == "position.closed"]
    assert closed["payload"]["opened_by_correlation_id"] == opened["correlation_id"]
    assert Decimal(closed["payload"]["quantity"]) == 0
    filled = [e for e in story if e["type"] == "order.filled"]
    assert filled and filled[-1]["payload"]["status"] == "FILLED"
    # Nothing is left to close.
    assert denial(api, symbol="SOLUSDT", side="SELL", close_position=True, notional=None) == (
        "denied",
        "INSUFFICIENT_BALANCE",
    )


def test_leverage_on_spot_is_not_supported_and_beyond_the_limit_is_max_leverage(api, market):
    RiskLimits.objects.update_or_create(symbol="", defaults={"max_leverage": 10})

    assert denial(api, leverage=5) == ("denied", "LEVERAGE_NOT_SUPPORTED")
    assert denial(api, leverage=20) == ("denied", "MAX_LEVERAGE")
    assert denial(api, leverage=1)[0] == "filled"


def test_a_notional_below_the_minimum_is_min_notional_not_lot_size(api, market):
    # 1.5 USDT buys less than SOL's 0.01 step; the exchange's minimum notional (5) says why.
    assert denial(api, symbol="SOLUSDT", notional="1.5") == ("denied", "MIN_NOTIONAL")


def test_the_ledger_and_the_paper_exchange_agree_on_every_balance(api, market):
    account = account_with("50000")
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        assert settled(api, post_signal(api, symbol=symbol)["id"], *DENIED)["status"] == "filled"
    eth = Position.objects.get(symbol="ETHUSDT").quantity
    half = (eth / 2).quantize(Decimal("0.0001"), rounding=ROUND_FLOOR)
    sold = settled(api, post_signal(api, symbol="ETHUSDT", side="SELL", quantity=str(half),
                                    notional=None)["id"], *DENIED)  # fmt: skip
    assert sold["status"] == "filled"
    closed = settled(api, post_signal(api, symbol="SOLUSDT", side="SELL", close_position=True,
                                      notional=None)["id"], *DENIED)  # fmt: skip
    assert closed["status"] == "filled"

    book = {asset: b.total for asset, b in ledger.balances(account).items()}
    held = {b.asset: b.total for b in venue.exchange(account).balances()}

    assert set(held) == {"USDT", "BTC", "ETH", "SOL"}
    assert {a: book.get(a, Decimal(0)) for a in held} == held
    assert held["SOL"] == 0 and held["ETH"] == eth - half
    assert all(b.locked == 0 for b in venue.exchange(account).balances())
