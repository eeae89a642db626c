"""Exits: what a closed bar triggers (paper fills, stop-loss and take-profit, liquidations on
futures accounts), closing one position and flattening an account."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from trading.events import outbox
from trading.events.envelope import new_event
from trading.execution import metrics
from trading.execution.adapter import ExchangeFill, OrderResult, OrderStatus, client_order_id_for
from trading.execution.orders import apply_order_result, submit_order
from trading.execution.recording import SERVICE, position_payload
from trading.execution.venue import exchange, venue_adapter
from trading.ledger import services as ledger
from trading.ledger.book import AccountKind, exit_trigger
from trading.marketdata.bars import Bar
from trading.marketdata.prices import latest_prices, latest_quote
from trading.marketdata.services import symbol_rules
from trading.models import Account, Order, Position

logger = logging.getLogger(__name__)


def on_bar(bar: Bar) -> None:
    """A closed bar: open paper orders fill further, and stop-loss / take-profit levels fire."""
    # The paper exchange fills on bars (the configured venue's, or the sandbox's).
    paper = venue_adapter("paper")
    for result in paper.on_bar(bar):
        order = Order.objects.filter(client_order_id=result.client_order_id).first()
        if order is not None:
            apply_order_result(order.pk, result)
    for position in Position.objects.filter(symbol=bar.symbol, status=Position.Status.OPEN):
        trigger = exit_trigger(
            ledger.position_state(position, position.symbol),
            bar.close,
            position.stop_loss_price,
            position.take_profit_price,
        )
        if trigger is not None:
            close_position(position, Order.Purpose(str(trigger).lower()), actor=f"system:{trigger}")
    check_liquidations(bar)


def check_liquidations(bar: Bar) -> list[Order]:
    """Liquidates every futures account holding the bar's symbol whose margin balance, with the
    symbol marked at the bar's close, has fallen below its maintenance margin (cross margin: all
    of the account's positions go). Returns the liquidation orders."""
    accounts = Account.objects.filter(
        kind=AccountKind.FUTURES, positions__symbol=bar.symbol, positions__status="open"
    ).distinct()
    orders = []
    for account in accounts:
        marks = {**latest_prices(), bar.symbol: bar.close}
        state = ledger.margin(account, marks)
        if state.liquidating:
            orders.extend(liquidate_account(account, marks, state))
    return orders


def liquidate_account(account: Account, marks: dict[str, Decimal], state) -> list[Order]:
    """Closes each open position of ``account`` at its mark, as the exchange's liquidation
    engine takes it over: an order of purpose ``liquidation`` filled at the mark with the taker
    fee, then a ``position.liquidated`` event. At most once per position."""
    orders = []
    for position in ledger.open_positions(account):
        mark = marks.get(position.symbol, position.average_entry_price)
        quantity = abs(position.quantity)
        side = "SELL" if position.quantity > 0 else "BUY"
        try:
            with transaction.atomic():
                order = Order.objects.create(
                    client_order_id=client_order_id_for(
                        f"{position.correlation_id}:liquidation:{position.pk}"
                    ),
                    account=account,
                    correlation_id=position.correlation_id,
                    venue=exchange(account).name,
                    symbol=position.symbol,
                    side=side,
                    purpose=Order.Purpose.LIQUIDATION,
                    quantity=quantity,
                    reference_price=mark,
                    leverage=ledger.leverage_for(account, position.symbol),
                    reduce_only=True,
                )
                ledger.lock_order(order)
                fill = ExchangeFill(
                    price=mark,
                    quantity=quantity,
                    commission=quantity * mark * ledger.fee_rate(),
                    commission_asset=ledger.QUOTE_ASSET,
                    trade_id=f"liquidation-{order.pk}",
                )
                result = OrderResult(
                    client_order_id=order.client_order_id,
                    exchange_order_id=f"liquidation-{order.pk}",
                    symbol=order.symbol,
                    side=side,
                    status=OrderStatus.FILLED,
                    orig_quantity=quantity,
                    executed_quantity=quantity,
                    cumulative_quote=quantity * mark,
                    fills=(fill,),
                    transact_time=timezone.now(),
                )
                apply_order_result(order.pk, result)
                position.refresh_from_db()
                position.account = account
                outbox.record([new_event("position.liquidated", {
                    **position_payload(position), "mark_price": str(mark),
                    "liquidated_quantity": str(quantity), "liquidation_side": side,
                    "margin_balance": str(state.margin_balance),
                    "maintenance_margin": str(state.maintenance_margin),
                    "order_id": order.pk}, service=SERVICE,
                    correlation_id=str(position.correlation_id))])  # fmt: skip
        except IntegrityError:  # liquidated already
            continue
        metrics.LIQUIDATIONS.inc(symbol=position.symbol)
        logger.warning("liquidated %s %s %s at %s: margin balance %s < maintenance %s",
                       account, position.symbol, position.quantity, mark, state.margin_balance,
                       state.maintenance_margin)  # fmt: skip
        orders.append(order)
    return orders


def close_position(position: Position, purpose: str, *, actor: str) -> Order | None:
    """Sends the order that takes the position to zero. Exits reduce risk, so they skip the
    pre-trade limits (a halted book must still be able to get flat); one exit per purpose."""
    if position.quantity == 0:
        return None
    side = "SELL" if position.quantity > 0 else "BUY"
    # Down onto the step an order must be on. What that leaves of a long (a commission paid in
    # the base asset leaves quantities off the step) is dust, which the sell's fill closes.
    quantity = abs(position.quantity)
    rules = symbol_rules().get(position.symbol)
    if rules is not None:
        quantity = rules.round_quantity(quantity, market=True)
    if quantity <= 0:
        logger.warning(
            "cannot close %s: %s is less than an order can trade",
            position.symbol,
            position.quantity,
        )
        return None
    key = f"{position.correlation_id}:{purpose}:{position.pk}"
    quote = latest_quote(position.symbol)
    try:
        with transaction.atomic():
            order = Order.objects.create(
                client_order_id=client_order_id_for(key),
                account=position.account,
                correlation_id=position.correlation_id,
                venue=exchange(position.account).name,
                symbol=position.symbol,
                side=side,
                purpose=purpose,
                quantity=quantity,
                reference_price=quote.price if quote else position.average_entry_price,
                leverage=ledger.leverage_for(position.account, position.symbol),
                reduce_only=True,
            )
            ledger.lock_order(order)
    except IntegrityError:
        return None
    except ledger.InsufficientBalance as error:  # another exit holds it already
        logger.warning("cannot close %s: %s", position.symbol, error)
        return None
    logger.warning("closing %s %s (%s) for %s", position.symbol, position.quantity, purpose, actor)
    return submit_order(order)


def flatten_positions(account: Account, *, actor: str) -> list[Order]:
    orders = []
    for position in ledger.open_positions(account):
        order = close_position(position, Order.Purpose.FLATTEN, actor=actor)
        if order is not None:
            orders.append(order)
    return orders
