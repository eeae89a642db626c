"""Reads and writes compiled once per process do what the ORM does, for every value they are
run with."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError
from django.db.models import Sum
from django.db.models.sql.compiler import SQLCompiler

from tests.support.signals import saved_signal
from trading.ledger import services as ledger
from trading.models import Account, Fill, Order, Signal
from trading.prepared import Param, Prepared, PreparedUpdate, save_fields
from trading.risk.services import get_account

pytestmark = pytest.mark.django_db

SIGNAL_WITH_STATE = Prepared(
    lambda: Signal.objects.select_related("account__trading_state").filter(
        pk=Param("pk", Signal._meta.pk)
    )
)


def fields_of(obj) -> dict:
    return {k: v for k, v in vars(obj).items() if k != "_state"}


def order_of(account, signal, n: int) -> Order:
    return Order.objects.create(
        client_order_id=f"prep-{n}",
        account=account,
        signal=signal,
        correlation_id=uuid.uuid4(),
        venue="paper",
        symbol="BTCUSDT",
        side="BUY",
        quantity=Decimal("0.00015"),
        reference_price=Decimal("64000.12"),
    )


def test_a_prepared_read_gives_the_orms_instances_with_their_related_rows_for_each_value():
    account = get_account()
    first = saved_signal(account, symbol="BTCUSDT", side="BUY", quantity=Decimal("0.00015"))
    second = saved_signal(
        account, symbol="ETHUSDT", side="SELL", notional=Decimal("25"), confidence=Decimal("0.61")
    )

    for signal, key in ((first, first.pk), (second, str(second.pk)), (first, str(first.pk))):
        orm = Signal.objects.select_related("account__trading_state").get(pk=signal.pk)
        [prepared] = SIGNAL_WITH_STATE.objects(pk=key)
        assert fields_of(prepared) == fields_of(orm)
        assert fields_of(prepared.account) == fields_of(orm.account)
        assert fields_of(prepared.account.trading_state) == fields_of(orm.account.trading_state)
        assert isinstance(prepared.confidence, Decimal)
    assert SIGNAL_WITH_STATE.objects(pk=uuid.uuid4()) == []


def test_it_compiles_its_sql_once(monkeypatch):
    account = get_account()
    signals = [
        saved_signal(account, symbol="BTCUSDT", side="BUY", quantity=Decimal("0.0002"))
        for _ in range(3)
    ]
    compiled = []
    as_sql = SQLCompiler.as_sql

    def counting(self, *args, **kwargs):
        compiled.append(self.query.model)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counting)
    reads = Prepared(lambda: Signal.objects.filter(pk=Param("pk", Signal._meta.pk)))
    found = [reads.objects(pk=s.pk)[0].pk for s in signals]

    assert found == [s.pk for s in signals]
    assert compiled == [Signal]


def test_todays_realized_pnl_is_the_orms_aggregate_to_the_last_digit():
    account = get_account()
    signal = saved_signal(account, symbol="BTCUSDT", side="BUY", quantity=Decimal("0.0002"))
    day = datetime(2026, 3, 4, tzinfo=UTC)
    trades = [
        (day - timedelta(seconds=1), Decimal("1000.12345678"), Decimal("0.00000001")),
        (day, Decimal("-3.99999999"), Decimal("0.01234567")),
        (day + timedelta(hours=5), Decimal("0.10000001"), Decimal("0.00100000")),
    ]
    for n, (ts, realized, fee) in enumerate(trades):
        Fill.objects.create(
            order=order_of(account, signal, n),
            trade_id=f"t{n}",
            symbol="BTCUSDT",
            side="BUY",
            quantity=Decimal("0.00015"),
            price=Decimal("64000.12"),
            fee=fee,
            realized_pnl=realized,
            ts=ts,
        )
    for start in (day - timedelta(days=1), day, day + timedelta(hours=1)):
        orm = Fill.objects.filter(order__account=account, ts__gte=start).aggregate(
            realized=Sum("realized_pnl"), fees=Sum("fee")
        )
        assert ledger.realized_since(account, start) == orm["realized"] - orm["fees"]
    assert ledger.realized_since(account, day + timedelta(days=1)) == Decimal("0")
    other = Account.objects.create(name="other", starting_cash=Decimal("1000"))
    assert ledger.realized_since(other, day - timedelta(days=1)) == Decimal("0")


def test_save_fields_writes_what_save_with_update_fields_writes(time_machine):
    account = get_account()
    signal = saved_signal(account, symbol="BTCUSDT", side="BUY", quantity=Decimal("0.0002"))
    orm, prepared = order_of(account, signal, 1), order_of(account, signal, 2)
    time_machine.move_to(datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC), tick=False)
    for order in (orm, prepared):
        order.filled_quantity = Decimal("0.00012345")
        order.average_price = Decimal("64001.98765432")
        order.status = "PARTIALLY_FILLED"
        order.side = "SELL"  # changed, not saved
    fields = ["filled_quantity", "average_price", "status", "updated_at"]
    orm.save(update_fields=fields)
    save_fields(prepared, fields)

    stored = {o.client_order_id: o for o in Order.objects.filter(pk__in=[orm.pk, prepared.pk])}
    again_orm, again_prepared = stored["prep-1"], stored["prep-2"]
    for name in (*fields, "side", "quantity"):
        assert getattr(again_prepared, name) == getattr(again_orm, name), name
    assert again_prepared.updated_at == datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert again_prepared.side == "BUY"

    Order.objects.filter(pk=prepared.pk).delete()
    with pytest.raises(DatabaseError):
        save_fields(prepared, fields)


def test_a_prepared_update_changes_only_the_rows_its_filter_finds():
    account = get_account()
    first, second = (
        saved_signal(account, symbol="BTCUSDT", side="BUY", quantity=Decimal("0.0002"))
        for _ in range(2)
    )
    decide = PreparedUpdate(
        lambda: Signal.objects.filter(pk=Param("pk", Signal._meta.pk), status="pending"),
        ["status", "detail"],
    )

    assert decide.run(pk=first.pk, status="denied", detail="first") == 1
    assert decide.run(pk=first.pk, status="submitted", detail="again") == 0
    assert decide.run(pk=str(second.pk), status="submitted", detail="") == 1
    statuses = dict(Signal.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "denied", second.pk: "submitted"}
    assert Signal.objects.get(pk=first.pk).detail == "first"
