"""Deciding a signal, exactly once: sized, checked against the risk limits and the symbol rules,
then denied with a reason or turned into its one order (its client order id derived from the
signal's correlation id, unique in the database).

A signal leaves ``pending`` once (a conditional update); a redelivered task finds it decided."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from trading.execution import decisions, metrics
from trading.execution.adapter import client_order_id_for
from trading.execution.intake import signal_payload
from trading.execution.orders import reconcile_order, submit_order
from trading.execution.recording import ZERO, OutboxEvents, order_payload
from trading.execution.venue import exchange
from trading.ledger import services as ledger
from trading.marketdata.prices import latest_quotes
from trading.marketdata.services import symbol_rules
from trading.models import Order, Position, Signal
from trading.prepared import Param, Prepared, PreparedUpdate
from trading.risk import services as risk
from trading.risk.checks import OrderIntent, evaluate
from trading.risk.reasons import Reason

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sizing:
    quantity: Decimal | None
    price: Decimal | None


def size_order(signal: Signal, price: Decimal | None) -> Sizing:
    """The order quantity: what the position holds for a signal that closes it (rounded down to
    the market step), else given, or the notional at the mark rounded down to the market step
    (``decisions.order_quantity``, which the backtest decides with too)."""
    held = ZERO
    if signal.close_position:
        position = Position.objects.filter(
            account=signal.account, symbol=signal.symbol, status=Position.Status.OPEN
        ).first()
        held = position.quantity if position is not None else ZERO
    quantity = decisions.order_quantity(
        close_position=signal.close_position,
        quantity=signal.quantity,
        notional=signal.notional,
        held=held,
        price=price,
        rules=symbol_rules().get(signal.symbol),
    )
    return Sizing(quantity, price)


def process_signal(signal_id: uuid.UUID | str) -> Signal:
    """Decides a pending signal: denied with a reason, or an order sent to the exchange.

    Safe to call any number of times: only the first call that finds the signal pending acts.
    """
    started = time.perf_counter()
    # The account's trading state comes along: the checks read it.
    found = _SIGNAL_WITH_STATE.objects(pk=signal_id)
    if not found:
        raise Signal.DoesNotExist(f"no signal {signal_id}")
    signal = found[0]
    if signal.status != Signal.Status.PENDING:
        order = signal.orders.first()
        if order is not None and order.status == Order.Status.UNKNOWN:
            reconcile_order(order.pk)
            return Signal.objects.get(pk=signal.pk)  # reconcile may have decided it
        return signal

    quotes = latest_quotes()
    quote = quotes.get(signal.symbol)
    sizing = size_order(signal, quote.price if quote else None)
    if sizing.price is None:
        return deny_signal(signal, Reason.NO_MARKET_DATA, f"no price for {signal.symbol} yet")
    if sizing.quantity is None or sizing.quantity <= 0:
        reason, detail = decisions.sizing_denial(
            symbol=signal.symbol,
            close_position=signal.close_position,
            notional=signal.notional,
            rules=symbol_rules().get(signal.symbol),
        )
        return deny_signal(signal, reason, detail)
    marks = {symbol: known.price for symbol, known in quotes.items()}
    leverage = order_leverage(signal)
    intent = OrderIntent(
        symbol=signal.symbol,
        side=signal.side,
        quantity=sizing.quantity,
        price=sizing.price,
        confidence=signal.confidence,
        leverage=leverage,
        reduce_only=reduces_only(signal),
    )
    decision = evaluate(
        intent,
        risk.limits_for(signal.symbol),
        risk.book_state(signal.account, marks, fee_rate=ledger.fee_rate()),
        symbol_rules(),
    )
    if not decision.approved:
        return deny_signal(signal, str(decision.reason), decision.detail)

    try:
        order = open_order(signal, sizing.quantity, sizing.price, leverage=leverage)
    except ledger.InsufficientMargin as error:  # spent by an order decided meanwhile
        return deny_signal(signal, Reason.INSUFFICIENT_MARGIN, str(error))
    except ledger.InsufficientBalance as error:  # spent by an order decided meanwhile
        return deny_signal(signal, Reason.INSUFFICIENT_BALANCE, str(error))
    if order is None:  # another delivery got there first
        return Signal.objects.get(pk=signal.pk)
    submit_order(order)
    metrics.ORDER_LATENCY.observe(time.perf_counter() - started)
    return _SIGNAL.objects(pk=signal.pk)[0]


_SIGNAL_WITH_STATE = Prepared(
    lambda: (
        Signal.objects.select_related("account__trading_state")
        .filter(pk=Param("pk", Signal._meta.pk))
        .order_by()
    )
)
# A pending signal moved on: the first call that finds it pending acts.
_SUBMIT_SIGNAL = PreparedUpdate(
    lambda: Signal.objects.filter(pk=Param("pk", Signal._meta.pk), status=Signal.Status.PENDING),
    ["status", "updated_at"],
)
_SIGNAL = Prepared(lambda: Signal.objects.filter(pk=Param("pk", Signal._meta.pk)).order_by())


def reduces_only(signal: Signal) -> bool:
    """Whether the signal's order may only shrink the position: asked for, or a close (which
    trades what the position holds, never more), so a close holds no initial margin and is never
    refused for want of it."""
    return signal.reduce_only or signal.close_position


def order_leverage(signal: Signal) -> int:
    """The leverage a signal's order trades at: on a futures account the symbol's setting, which
    a signal asking for more than 1 changes (as Binance's POST /fapi/v1/leverage before the
    order); on spot the signal's own, which the checks hold to 1."""
    if not ledger.is_futures(signal.account) or signal.leverage > 1:
        return signal.leverage
    return ledger.leverage_for(signal.account, signal.symbol)


def deny_signal(signal: Signal, reason: str, detail: str) -> Signal:
    with transaction.atomic():
        updated = Signal.objects.filter(pk=signal.pk, status=Signal.Status.PENDING).update(
            status=Signal.Status.DENIED,
            reason=reason,
            detail=detail[:300],
            updated_at=timezone.now(),
        )
        if updated != 1:
            return Signal.objects.get(pk=signal.pk)
        events = OutboxEvents()
        payload = {**signal_payload(signal), "reason": reason, "detail": detail}
        events.add("order.requested", signal_payload(signal), signal.correlation_id)
        events.add("order.denied", payload, signal.correlation_id)
        events.record()
    metrics.ORDERS_DENIED.inc(reason=reason)
    logger.info("signal %s denied: %s (%s)", signal.correlation_id, reason, detail)
    return Signal.objects.get(pk=signal.pk)


def open_order(
    signal: Signal, quantity: Decimal, price: Decimal, *, leverage: int = 1
) -> Order | None:
    """Moves the signal to submitted and creates its one order, holding what it needs of the
    account's balances; None if another call did. Raises ``InsufficientBalance`` (and changes
    nothing) when the free balance no longer pays for it."""
    try:
        with transaction.atomic():
            updated = _SUBMIT_SIGNAL.run(
                pk=signal.pk, status=Signal.Status.SUBMITTED, updated_at=timezone.now()
            )
            if updated != 1:
                return None
            order = Order.objects.create(
                client_order_id=client_order_id_for(str(signal.correlation_id)),
                account=signal.account,
                signal=signal,
                correlation_id=signal.correlation_id,
                venue=exchange(signal.account).name,
                symbol=signal.symbol,
                side=signal.side,
                quantity=quantity,
                reference_price=price,
                leverage=leverage,
                reduce_only=reduces_only(signal),
            )
            if ledger.is_futures(signal.account):
                # The symbol's leverage is the one the order's margin is held at.
                ledger.set_leverage(signal.account, signal.symbol, leverage)
            ledger.lock_order(order)
            events = OutboxEvents()
            events.add("order.requested", order_payload(order), order.correlation_id)
            # The order goes to the exchange now: its event is relayed with the answer's.
            events.record(goes_on=True)
    except IntegrityError:
        return None
    return order
