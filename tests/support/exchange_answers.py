"""Orders and the exchange's answers to them, written by the tests themselves: what the cash,
position and commission tests record through ``apply_order_result``."""

from __future__ import annotations

from decimal import Decimal as D
from uuid import uuid4

from trading.execution import orders, venue
from trading.execution.adapter import ExchangeFill, OrderResult, OrderStatus, client_order_id_for
from trading.models import Account, Order


def new_order(account: Account, symbol: str = "BTCUSDT", side: str = "BUY", quantity="1"):
    return Order.objects.create(
        client_order_id=client_order_id_for(uuid4().hex),
        account=account,
        correlation_id=uuid4(),
        venue="paper",
        symbol=symbol,
        side=side,
        quantity=D(quantity),
        reference_price=D("1"),
    )


def trade(quantity: str, price: str, commission: str = "0", asset: str = "USDT") -> ExchangeFill:
    return ExchangeFill(D(price), D(quantity), D(commission), asset, uuid4().hex)


def report(order: Order, *fills: ExchangeFill, status=OrderStatus.FILLED) -> Order:
    """Records an exchange answer carrying ``fills`` for ``order``."""
    executed = sum((f.quantity for f in fills), D(0))
    return orders.apply_order_result(
        order.pk,
        OrderResult(
            client_order_id=order.client_order_id,
            exchange_order_id=f"x-{order.pk}",
            symbol=order.symbol,
            side=order.side,
            status=status,
            orig_quantity=order.quantity,
            executed_quantity=executed,
            cumulative_quote=sum((f.quantity * f.price for f in fills), D(0)),
            fills=fills,
            transact_time=None,
        ),
    )


def hold_on_paper(account: Account, asset: str, amount: str) -> None:
    """Puts ``amount`` of ``asset`` in the account's paper book: what the venue holds after the
    trades a test reported for it, so that the orders that follow can sell it."""
    venue.exchange(account).deposit(asset, D(amount))
