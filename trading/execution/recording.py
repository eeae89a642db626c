"""What the execution services write beside their changes: the events of one transaction,
bound for the outbox, and the payloads of order and position events."""

from __future__ import annotations

import uuid
from decimal import Decimal

from trading.events import outbox
from trading.events.envelope import Event, new_event
from trading.models import Order, Position

ZERO = Decimal("0")


SERVICE = "exec-risk"


class OutboxEvents:
    """Events collected inside a transaction, written to the outbox with it."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, type_: str, payload: dict, correlation_id: uuid.UUID | str) -> None:
        self.events.append(
            new_event(type_, payload, service=SERVICE, correlation_id=str(correlation_id))
        )

    def record(self, *, goes_on: bool = False) -> None:
        """Writes the events to the outbox in the current transaction; once they are in the log
        analytics is told there is something to read. ``goes_on=True`` where the signal's story
        goes on at once in this process: its events are relayed with its next step's, which
        tells analytics, who reads everything before them too (a relay and a message cost about
        a millisecond on the signal's way to its fill)."""
        outbox.record(
            self.events,
            then=None if goes_on else outbox.ANALYTICS_NUDGE,
            with_next=goes_on,
        )


def order_payload(order: Order, **extra) -> dict:
    return {
        "order_id": order.pk,
        "client_order_id": order.client_order_id,
        "account": order.account.name,
        "symbol": order.symbol,
        "side": order.side,
        "quantity": str(order.quantity),
        "filled_quantity": str(order.filled_quantity),
        "status": order.status,
        "purpose": order.purpose,
        "venue": order.venue,
        **extra,
    }


def position_payload(position: Position) -> dict:
    return {
        "position_id": position.pk,
        "opened_by_correlation_id": str(position.correlation_id),
        "account": position.account.name,
        "symbol": position.symbol,
        "status": position.status,
        "quantity": str(position.quantity),
        "average_entry_price": str(position.average_entry_price),
        "realized_pnl": str(position.realized_pnl),
        "fees_paid": str(position.fees_paid),
        "net_realized_pnl": str(position.net_realized_pnl),
        "opened_at": position.opened_at.isoformat(),
        "closed_at": position.closed_at.isoformat() if position.closed_at else None,
    }
