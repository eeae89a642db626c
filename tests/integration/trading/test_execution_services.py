"""The execution services in this process, against the real Redis and the test database."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.integration.trading.conftest import bars_at
from tests.support.exchange_answers import hold_on_paper, new_order, report, trade
from tests.support.signals import saved_signal
from trading.events.replay import read_window
from trading.execution import exits, orders, recovery, signals, venue
from trading.execution.adapter import ExchangeFill
from trading.ledger import services as ledger
from trading.marketdata.prices import record_bars
from trading.models import Fill, Order, Position, RiskLimits, Signal
from trading.risk import services as risk

pytestmark = pytest.mark.django_db(transaction=True)


def signal(symbol="BTCUSDT", side="BUY", confidence="0.9", **fields) -> Signal:
    fields.setdefault("notional", None if "quantity" in fields else Decimal("1000"))
    return saved_signal(
        risk.get_account(), symbol=symbol, side=side, confidence=Decimal(confidence), **fields
    )


def events_of(correlation_id) -> list[str]:
    window = read_window(limit=1000, correlation_id=str(correlation_id))
    return [event.type for _, event in window]


def test_a_buy_opens_a_position_at_the_mark_with_slippage_and_fees(market):
    decided = signals.process_signal(signal().pk)
    assert decided.status == Signal.Status.FILLED
    order = decided.orders.get()
    (fill,) = order.fills.all()
    close = market["BTCUSDT"].close
    # 5 bps of slippage against the buyer, rounded up to the 0.01 tick
    expected_price = (close * Decimal("1.0005")).quantize(Decimal("0.01"), rounding="ROUND_UP")
    assert fill.price == expected_price
    assert fill.fee == fill.quantity * fill.price * Decimal("0.001")
    # 1000 USDT at the mark, rounded down to the 0.00001 BTC step
    assert order.quantity == (Decimal("1000") / close).quantize(Decimal("0.00001"), "ROUND_DOWN")
    position = Position.objects.get(symbol="BTCUSDT", status="open")
    assert position.quantity == order.quantity
    assert position.average_entry_price == fill.price
    assert position.correlation_id == decided.correlation_id


def test_buy_then_sell_closes_the_position_with_realized_pnl(market):
    signals.process_signal(signal(symbol="ETHUSDT").pk)
    opened = Position.objects.get(symbol="ETHUSDT", status="open")
    record_bars(bars_at(1))
    sold = signals.process_signal(signal(symbol="ETHUSDT", side="SELL",
                                          quantity=opened.quantity).pk)  # fmt: skip
    assert sold.status == Signal.Status.FILLED
    closed = Position.objects.get(pk=opened.pk)
    assert closed.status == Position.Status.CLOSED and closed.quantity == 0
    buy, sell = Fill.objects.filter(symbol="ETHUSDT").order_by("id")
    assert closed.realized_pnl == (sell.price - buy.price) * buy.quantity
    assert closed.fees_paid == buy.fee + sell.fee
    assert closed.net_realized_pnl == closed.realized_pnl - buy.fee - sell.fee
    assert "position.opened" in events_of(opened.correlation_id)
    # The close is filed under the signal that closed it, which ends with it; the opener is named.
    closing = events_of(sold.correlation_id)
    assert closing[-3:] == ["order.submitted", "order.filled", "position.closed"]
    filled = read_window(correlation_id=str(sold.correlation_id), types=["order.filled"])
    assert filled[-1][1].payload["status"] == "FILLED"
    closed_event = read_window(correlation_id=str(sold.correlation_id), types=["position.closed"])
    assert closed_event[-1][1].payload["opened_by_correlation_id"] == str(opened.correlation_id)


def test_processing_a_signal_twice_places_one_order(market):
    pending = signal(symbol="SOLUSDT")
    signals.process_signal(pending.pk)
    signals.process_signal(pending.pk)
    assert Order.objects.filter(signal=pending).count() == 1
    assert Fill.objects.filter(order__signal=pending).count() == 1


def test_the_same_fill_reported_twice_moves_the_position_once(market):
    decided = signals.process_signal(signal().pk)
    order = decided.orders.get()
    result = venue.exchange().query_order(order.symbol, order.client_order_id)
    fill = order.fills.get()

    again = ExchangeFill(fill.price, fill.quantity, fill.fee, "USDT", fill.trade_id)
    orders.apply_order_result(order.pk, dataclasses.replace(result, fills=(again,)))
    assert Fill.objects.filter(order=order).count() == 1
    assert Position.objects.get(symbol="BTCUSDT", status="open").quantity == order.quantity


def test_a_denial_carries_its_reason_everywhere(market):
    denied = signals.process_signal(signal(confidence="0.5").pk)
    assert denied.status == Signal.Status.DENIED
    assert denied.reason == "LOW_CONFIDENCE"
    assert "0.5" in denied.detail
    assert not denied.orders.exists()
    assert events_of(denied.correlation_id) == [
        "signal.generated", "order.requested", "order.denied",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "limits", "reason"),
    [
        ({"notional": Decimal("5000")}, {"max_position_notional": Decimal("1000")},
         "MAX_POSITION_NOTIONAL"),
        ({"leverage": 10}, {"max_leverage": 3}, "MAX_LEVERAGE"),
        ({"notional": Decimal("3")}, {}, "MIN_NOTIONAL"),
    ],
)  # fmt: skip
def test_limits_from_the_database_deny_with_their_reason(market, fields, limits, reason):
    risk.global_limits()
    RiskLimits.objects.filter(symbol="").update(**limits)
    denied = signals.process_signal(signal(**fields).pk)
    assert (denied.status, denied.reason) == ("denied", reason)


def test_a_per_symbol_limit_overrides_the_global_one(market):
    RiskLimits.objects.create(symbol="SOLUSDT", max_position_notional=Decimal("100"))
    assert signals.process_signal(signal(symbol="SOLUSDT").pk).reason == "MAX_POSITION_NOTIONAL"
    assert signals.process_signal(signal(symbol="ETHUSDT").pk).status == "filled"


def test_a_halt_denies_the_next_signal_and_resume_restores_trading(market):
    account = risk.get_account()
    risk.halt_trading(account, actor="olivia", reason="drill")
    assert signals.process_signal(signal().pk).reason == "TRADING_HALTED"
    risk.resume_trading(account, actor="olivia", reason="drill over")
    assert signals.process_signal(signal().pk).status == "filled"
    history = risk.risk_summary(account)["history"]
    assert [(h["from"], h["to"], h["actor"]) for h in history] == [
        ("HALTED", "ACTIVE", "olivia"), ("ACTIVE", "HALTED", "olivia"),
    ]  # fmt: skip


def test_halting_with_flatten_closes_every_open_position(market):
    for symbol in ("BTCUSDT", "ETHUSDT"):
        signals.process_signal(signal(symbol=symbol).pk)
    account = risk.get_account()
    risk.change_trading_state(account, "HALTED", actor="olivia", reason="flatten", flatten=True)
    orders = exits.flatten_positions(account, actor="olivia")
    assert {o.purpose for o in orders} == {"flatten"}
    assert not Position.objects.filter(status="open").exists()


def test_the_daily_loss_limit_halts_trading_by_itself(market):
    RiskLimits.objects.update_or_create(symbol="", defaults={"daily_loss_limit": Decimal("1")})
    signals.process_signal(signal(notional=Decimal("5000")).pk)
    position = Position.objects.get(status="open")
    # fees alone (about 10 USDT on 5000 each way) lose more than 1 USDT
    signals.process_signal(signal(side="SELL", quantity=position.quantity).pk)
    state = risk.risk_summary(risk.get_account())
    assert state["state"] == "HALTED"
    assert state["history"][0]["actor"] == "system:DAILY_LOSS_LIMIT"


def test_a_stop_loss_closes_the_position_when_a_bar_closes_below_it(market):
    close = market["BTCUSDT"].close
    signals.process_signal(signal(stop_loss_price=close - 1).pk)
    position = Position.objects.get(status="open")
    lower = bars_at(0)[0]
    from dataclasses import replace

    crash = replace(lower, close=close - 100, low=close - 100,
                    open_time=lower.open_time + timedelta(minutes=5),
                    close_time=lower.close_time + timedelta(minutes=5))  # fmt: skip
    record_bars([crash])
    exits.on_bar(crash)
    position.refresh_from_db()
    assert position.status == "closed"
    assert Order.objects.filter(purpose="stop_loss").count() == 1


def test_no_market_data_denies_instead_of_guessing(redis_server):
    from trading.store import redis_client, rkey

    redis_client().delete(rkey("prices"))
    assert signals.process_signal(signal().pk).reason == "NO_MARKET_DATA"


def test_a_drawdown_beyond_the_limit_makes_the_book_reduce_only(market):
    account = risk.get_account()
    # Equity once stood 10% above the starting cash; the limit allows 5% below the peak.
    account.peak_equity = account.starting_cash * Decimal("1.1")
    account.save()
    RiskLimits.objects.update_or_create(symbol="", defaults={"max_drawdown": Decimal("0.05")})
    signals.process_signal(signal(symbol="BTCUSDT").pk)
    summary = risk.risk_summary(account)
    assert summary["state"] == "REDUCING"
    assert summary["history"][0]["actor"] == "system:MAX_DRAWDOWN"
    assert signals.process_signal(signal(symbol="ETHUSDT").pk).reason == "REDUCE_ONLY"
    position = Position.objects.get(status="open")
    closing = signals.process_signal(signal(side="SELL", quantity=position.quantity).pk)
    assert closing.status == "filled"


def test_an_equity_snapshot_values_positions_at_their_marks(market):
    signals.process_signal(signal(symbol="SOLUSDT").pk)
    account = risk.get_account()
    recovery.snapshot_equity(account)
    snapshot = account.equity.get()
    position = Position.objects.get(status="open")
    mark = market["SOLUSDT"].close
    assert snapshot.exposure == position.quantity * mark
    assert snapshot.equity == snapshot.cash + position.quantity * mark
    assert snapshot.unrealized_pnl == (mark - position.average_entry_price) * position.quantity


# -- commissions in the base asset or in a third one, through apply_order_result -------------------


def test_a_buy_paying_its_commission_in_btc_holds_what_binance_holds_and_closes_to_zero(market):
    account = risk.get_account()
    start = ledger.account_cash(account)

    bought = report(
        new_order(account, "BTCUSDT", "BUY", "0.001"), trade("0.001", "60000", "0.000001", "BTC")
    )

    # Binance credits 0.001 - 0.000001 BTC: the book holds that, not the 0.001 traded.
    position = Position.objects.get(symbol="BTCUSDT", status="open")
    assert position.quantity == Decimal("0.000999")
    assert (position.average_entry_price, position.fees_paid) == (Decimal("60000"), Decimal("0.06"))
    # The order is what the exchange executed, and only its notional left the USDT.
    assert (bought.status, bought.filled_quantity) == (Order.Status.FILLED, Decimal("0.001"))
    assert bought.average_price == Decimal("60000")
    assert ledger.account_cash(account) == ledger.ledger_cash(account) == start - Decimal("60")
    hold_on_paper(account, "BTC", "0.000999")

    closing = exits.close_position(position, Order.Purpose.FLATTEN, actor="olivia")

    # What an order can sell of 0.000999 BTC on the 0.00001 step (the paper exchange, like
    # Binance, refuses anything else); the sale closes the position to exactly zero.
    assert closing.quantity == Decimal("0.00099")
    assert closing.status == Order.Status.FILLED
    position.refresh_from_db()
    assert (position.status, position.quantity) == (Position.Status.CLOSED, 0)
    assert not Position.objects.filter(status="open").exists()
    sold = closing.fills.get()
    # The sale less the whole entry cost: the 0.000009 BTC of dust left is worth nothing.
    assert position.realized_pnl == sold.quantity * sold.price - Decimal("59.94")
    assert position.fees_paid == Decimal("0.06") + sold.fee
    # PnL, fees and cash tell one story, and the fills tell it again.
    cash = ledger.account_cash(account)
    assert cash == ledger.ledger_cash(account)
    assert cash - start == position.net_realized_pnl
    today = ledger.utc_day_start(timezone.now())
    assert ledger.realized_since(account, today) == position.net_realized_pnl


def test_a_sale_paying_its_commission_in_btc_gives_up_that_btc_and_closes_the_long(market):
    account = risk.get_account()
    start = ledger.account_cash(account)
    report(new_order(account, "BTCUSDT", "BUY", "0.001"), trade("0.001", "60000", "0.06", "USDT"))

    sell = new_order(account, "BTCUSDT", "SELL", "0.001")
    report(sell, trade("0.001", "61000", "0.000001", "BTC"))

    # 0.001001 BTC left the book for 61 USDT; the book does not go short by the commission.
    position = Position.objects.get(symbol="BTCUSDT")
    assert (position.status, position.quantity) == (Position.Status.CLOSED, 0)
    sale = Fill.objects.get(side="SELL")
    assert (sale.quantity, sale.fee, sale.fee_asset) == (
        Decimal("0.001001"),
        Decimal("0.061"),
        "BTC",
    )
    assert (
        ledger.account_cash(account) == ledger.ledger_cash(account) == start - Decimal("60.06") + 61
    )
    assert position.net_realized_pnl == Decimal("0.94")  # 61 - 60 - 0.06


@pytest.mark.parametrize(
    ("commission", "asset", "fees"),
    [
        ("0.5", "USDT", Decimal("0.5")),  # the fee, as before
        ("0.004", "BNB", Decimal("0")),  # out of a balance the book does not keep
    ],
)
def test_a_commission_in_usdt_or_bnb_leaves_the_position_as_trade(market, commission, asset, fees):
    account = risk.get_account()
    start = ledger.account_cash(account)

    report(new_order(account, "SOLUSDT", "BUY", "2.5"), trade("2.5", "200", commission, asset))

    position = Position.objects.get(symbol="SOLUSDT", status="open")
    assert (position.quantity, position.average_entry_price) == (Decimal("2.5"), Decimal("200"))
    assert position.fees_paid == fees
    assert ledger.account_cash(account) == ledger.ledger_cash(account) == start - 500 - fees
