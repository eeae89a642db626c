"""The dashboard's positions section for a futures account carries each position's leverage,
margins and liquidation price from the ledger; a liquidation reads plainly in the event feed."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from controlpanel.dashboard import sections
from trading.ledger import futures
from trading.ledger import services as ledger
from trading.models import Account, Position
from trading.risk import services as risk

pytestmark = pytest.mark.django_db(transaction=True)


def open_position(account: Account, symbol: str, quantity: str, price: Decimal) -> Position:
    return Position.objects.create(
        account=account,
        symbol=symbol,
        quantity=Decimal(quantity),
        average_entry_price=price,
        cost_basis=Decimal(quantity).copy_abs() * price,
        correlation_id=uuid.uuid4(),
        opened_at=timezone.now(),
    )


def test_a_futures_position_shows_its_leverage_margins_and_liquidation_price(market):
    account = risk.get_account()
    Account.objects.filter(pk=account.pk).update(kind="futures", starting_cash="10000")
    account.refresh_from_db()
    ledger.set_leverage(account, "BTCUSDT", 20)
    mark = market["BTCUSDT"].close
    open_position(account, "BTCUSDT", "0.5", mark)

    (row,) = sections.positions()
    assert row["leverage"] == 20
    notional = Decimal("0.5") * mark
    assert Decimal(row["initial_margin"]) == notional / 20
    brackets = ledger.brackets_for("BTCUSDT")
    assert Decimal(row["maintenance_margin"]) == brackets.maintenance_margin(notional)
    liquidation = Decimal(row["liquidation_price"])
    # At the liquidation price the margin balance meets the maintenance margin.
    held = futures.Holding(ledger.position_state(Position.objects.get(), "BTCUSDT"), 20,
                           brackets, liquidation)  # fmt: skip
    state = futures.margin_state(Decimal("10000"), [held])
    assert state.margin_balance == pytest.approx(state.maintenance_margin, abs=Decimal("1e-6"))
    assert liquidation < mark


def test_a_spot_position_has_no_futures_fields(market):
    account = risk.get_account()
    open_position(account, "BTCUSDT", "0.5", market["BTCUSDT"].close)
    (row,) = sections.positions()
    assert "leverage" not in row and "liquidation_price" not in row


def test_a_liquidation_reads_plainly_in_the_event_feed():
    event = {
        "ts": "2026-01-01T00:00:00+00:00",
        "type": "position.liquidated",
        "service": "exec-risk",
        "payload": {"account": "paper", "symbol": "BTCUSDT", "quantity": "0",
                    "liquidated_quantity": "0.5", "mark_price": "60000"},
    }  # fmt: skip
    assert sections.event_row(event)["summary"] == "LIQUIDATED BTCUSDT 0.5 at 60,000"
    assert "positions" in sections.AFFECTS["position.liquidated"]
