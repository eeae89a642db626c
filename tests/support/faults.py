"""Checks and levers for the fault-tolerance tests: SQLite's write lock held from outside, and
the book after a fault (no order lost or doubled)."""

from __future__ import annotations

import sqlite3
from collections import Counter
from decimal import Decimal

from tests.conftest import SYMBOLS, database_url_for_processes


class WriteLock:
    """SQLite's write lock on the test database, held from another connection. With WAL, readers
    go on and writers wait (up to their 20 s busy timeout): a worker stops at its next write, its
    task half done."""

    def __init__(self) -> None:
        path = database_url_for_processes().removeprefix("sqlite:///")
        self.connection = sqlite3.connect(path, timeout=20, isolation_level=None)

    def __enter__(self) -> WriteLock:
        self.connection.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc) -> None:
        self.connection.execute("ROLLBACK")


def check_the_book(ids: list[str]) -> None:
    """No signal has more than one order and no client order id is used twice; the exchange has
    every order once, filled as the book says; each open position is the signed sum of the fills
    in its symbol (a closed position's fills sum to zero)."""
    from trading.execution.venue import exchange
    from trading.models import Fill, Order, Position, Signal

    orders = list(Order.objects.filter(signal_id__in=ids))
    per_signal = Counter(order.signal_id for order in orders)
    assert orders and max(per_signal.values()) == 1, per_signal.most_common(3)
    client_order_ids = Counter(Order.objects.values_list("client_order_id", flat=True))
    assert max(client_order_ids.values()) == 1, client_order_ids.most_common(3)
    assert Signal.objects.filter(pk__in=ids, status="filled").count() == len(orders)
    venue = exchange()
    for order in orders:
        assert order.status == "FILLED", order
        at_exchange = venue.query_order(order.symbol, order.client_order_id)
        assert at_exchange.executed_quantity == order.filled_quantity == order.quantity

    for symbol in SYMBOLS:
        fills = Fill.objects.filter(symbol=symbol)
        signed = sum((f.quantity if f.side == "BUY" else -f.quantity for f in fills), Decimal(0))
        positions = list(Position.objects.filter(symbol=symbol, status="open"))
        assert len(positions) <= 1
        quantity = sum((p.quantity for p in positions), Decimal(0))
        assert quantity == signed, (symbol, quantity, signed)
