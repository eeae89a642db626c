"""Orders on the exchange: sent once, answers recorded once.

- An order is never sent twice: a retryable refusal the exchange did not act on is sent again
  later with the same client order id; an ambiguous answer (timeout, 5xx) leaves the order
  UNKNOWN until it is looked up, and nothing is sent before that.
- A fill is unique per (order, trade id), so a fill reported twice moves the position once."""

from __future__ import annotations

import dataclasses
import logging
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from trading import bus
from trading.execution import metrics
from trading.execution.adapter import ExchangeError, ExchangeFill, OrderRequest, OrderResult
from trading.execution.fills import record_fill, unrecorded
from trading.execution.recording import ZERO, OutboxEvents, order_payload
from trading.execution.venue import exchange
from trading.ledger import services as ledger
from trading.marketdata.prices import latest_prices
from trading.models import Fill, Order, Signal
from trading.prepared import Param, Prepared, PreparedUpdate, save_fields
from trading.risk import services as risk
from trading.risk.reasons import Reason
from trading.store import redis_client

logger = logging.getLogger(__name__)


SUBMIT_ATTEMPTS = 3


def submit_order(order: Order, attempt: int = 1) -> Order:
    """Sends the order; records what the exchange answered. Never sends an order twice.

    A refusal that says a retry can help (a rate limit, a clock drift, no quote yet) and that the
    exchange did not act on is sent again later, up to ``SUBMIT_ATTEMPTS`` times in all."""
    request = OrderRequest(
        symbol=order.symbol,
        side=order.side,
        order_type="MARKET",
        quantity=order.quantity,
        client_order_id=order.client_order_id,
        reduce_only=order.reduce_only,
        leverage=order.leverage if ledger.is_futures(order.account) else None,
    )
    venue = exchange(order.account)
    try:
        if venue.name != "paper":
            # order/test first: a filter failure is learnt without an order in doubt.
            venue.validate_order(request)
        result = venue.place_order(request)
    except ExchangeError as error:
        return _record_exchange_error(order, error, attempt)
    return apply_order_result(order.pk, result)


def _record_exchange_error(order: Order, error: ExchangeError, attempt: int = 1) -> Order:
    if error.retryable and not error.ambiguous and attempt < SUBMIT_ATTEMPTS:
        Order.objects.filter(pk=order.pk, status=Order.Status.NEW).update(error=str(error)[:300])
        metrics.EXECUTION_ERRORS.inc(kind=metrics.ExecutionError.RETRYABLE)
        delay = error.retry_after or 2 * attempt
        transaction.on_commit(
            lambda: bus.send(bus.SUBMIT_ORDER, order.pk, attempt + 1, countdown=delay)
        )
        return Order.objects.get(pk=order.pk)
    if error.ambiguous or (error.code == -2010 and "Duplicate" in error.message):
        # The exchange may have the order: find out before anything else happens.
        Order.objects.filter(pk=order.pk, status=Order.Status.NEW).update(
            status=Order.Status.UNKNOWN, error=str(error)[:300]
        )
        metrics.EXECUTION_ERRORS.inc(kind=metrics.ExecutionError.AMBIGUOUS)
        transaction.on_commit(lambda: bus.send(bus.RECONCILE_ORDER, order.pk, countdown=1))
        return Order.objects.get(pk=order.pk)
    with transaction.atomic():
        held = ledger.order_lock(order)[1]
        rejected = Order.objects.filter(pk=order.pk, status=Order.Status.NEW).update(
            status=Order.Status.REJECTED, error=str(error)[:300]
        )
        if rejected != 1:  # another delivery already settled this order
            return Order.objects.get(pk=order.pk)
        order.status = Order.Status.REJECTED
        ledger.release_order(order, held)
        # The exchange's own balance check fails with the same reason as the ledger's.
        reason = (
            Reason.INSUFFICIENT_BALANCE if error.insufficient_balance else Reason.EXCHANGE_REJECTED
        )
        if order.signal_id:
            Signal.objects.filter(pk=order.signal_id).update(
                status=Signal.Status.REJECTED,
                reason=reason,
                detail=error.message[:300],
                updated_at=timezone.now(),
            )
        events = OutboxEvents()
        events.add("order.rejected", order_payload(order, error=str(error), reason=reason),
                   order.correlation_id)  # fmt: skip
        events.record()
    metrics.EXECUTION_ERRORS.inc(kind=metrics.ExecutionError.REJECTED)
    return Order.objects.get(pk=order.pk)


def reconcile_order(order_id: int) -> Order:
    """Asks the exchange for an order in doubt and records its answer.

    An order the exchange does not have was never placed: it is sent now, with the same client
    order id. The answer carries the order's trades, commissions included, when the exchange
    could say them (``apply_order_result`` says what happens when it could not).
    """
    order = Order.objects.get(pk=order_id)
    try:
        result = exchange(order.account).query_order(order.symbol, order.client_order_id)
    except ExchangeError as error:
        if error.code == -2013:
            Order.objects.filter(pk=order.pk, status=Order.Status.UNKNOWN).update(
                status=Order.Status.NEW
            )
            return submit_order(Order.objects.get(pk=order.pk))
        raise
    return apply_order_result(order.pk, result)


# The trade id of a fill made up from an order's totals, for want of its trades.
RECONCILED = "reconciled-"


def _with_fills(order: Order, result: OrderResult) -> tuple[OrderResult, str]:
    """The answer with fills for everything it says executed, and a note for the order when some
    had to be made up: a query whose trades the exchange could not give reports only totals, so
    what executed beyond the fills recorded becomes one fill at the average price of the
    difference, with no commission known. ``order`` must be locked."""
    if (
        result.fills
        and order.filled_quantity
        and order.fills.filter(trade_id__startswith=RECONCILED).exists()
    ):
        # A fill made up from totals stands for trades that may be among these: both would count.
        result = dataclasses.replace(result, fills=())
    if result.fills or result.executed_quantity <= order.filled_quantity:
        return result, ""
    delta = result.executed_quantity - order.filled_quantity
    price = (result.cumulative_quote - _quote_filled(order)) / delta
    fill = ExchangeFill(
        price=price,
        quantity=delta,
        commission=ZERO,
        commission_asset=ledger.assets_of(order.symbol)[1],
        trade_id=f"{RECONCILED}{result.executed_quantity}",
    )
    why = result.fills_error or "the answer carried no trades"
    note = f"fill of {delta} from the order's totals, commission unknown: {why}"
    logger.warning("order %s: %s", order.client_order_id, note)
    return dataclasses.replace(result, fills=(fill,)), note


def _quote_filled(order: Order) -> Decimal:
    """The quote the order's recorded fills traded, as the exchange reported them."""
    if not order.filled_quantity or order.average_price is None:
        return ZERO
    return order.filled_quantity * order.average_price


def apply_order_result(order_id: int, result: OrderResult) -> Order:
    """Records an exchange answer: new fills and the cash they moved, the order's status, the
    signal's fate, positions."""
    events = OutboxEvents()
    counters: list = []
    with transaction.atomic():
        # Locks the order and its account's row (on PostgreSQL, one answer at a time per
        # account); the signal comes along unlocked, for the position a fill may open (a
        # flatten order has none: an outer join, which PostgreSQL cannot lock).
        found = _LOCKED_ORDER.objects(pk=order_id)
        if not found:
            raise Order.DoesNotExist(f"no order {order_id}")
        order = found[0]
        result, note = _with_fills(order, result)
        held = ledger.order_lock(order)[1]
        if order.status in (Order.Status.NEW, Order.Status.UNKNOWN):
            # The exchange has the order: said before any of its fills, as it happened.
            events.add("order.submitted", order_payload(order, status="submitted"),
                       order.correlation_id)  # fmt: skip
        fresh = unrecorded(order, result.fills)
        # The order's totals are the exchange's trades, whatever their commissions did to the
        # quantities booked: kept up fill by fill, under the order's lock. Its status after
        # them is known before they are stored, so that each order.filled event says it.
        quote = _quote_filled(order) + sum((f.quantity * f.price for f in fresh), ZERO)
        order.filled_quantity += sum((f.quantity for f in fresh), ZERO)
        if order.filled_quantity:
            order.average_price = quote / order.filled_quantity
        status = Order.Status(result.status)
        if order.filled_quantity >= order.quantity:
            status = Order.Status.FILLED
        previous = order.status
        order.status = status
        traded = [record_fill(order, f, events, counters) for f in fresh]
        if traded:
            # The balances the new fills moved, as the database stored them.
            ids = {f.trade_id for f in traded}
            new = [f for f in _FILLS_OF.objects(order=order.pk) if f.trade_id in ids]
            ledger.record_fills(order, new, held)
        else:
            ledger.release_order(order, held)
        order.exchange_order_id = result.exchange_order_id or order.exchange_order_id
        fields = ["filled_quantity", "average_price", "exchange_order_id", "status", "updated_at"]
        if note:
            order.error = note[:300]
            fields.append("error")
        save_fields(order, fields)
        if order.signal_id:
            _update_signal(order)
        events.record()
    if status == Order.Status.FILLED and previous != Order.Status.FILLED:
        counters.append((metrics.ORDERS_EXECUTED, {}))
    _count(counters)
    if traded:
        risk.apply_automatic_state(order.account, latest_prices())
    return order


_FILLS_OF = Prepared(
    lambda: Fill.objects.filter(order_id=Param("order", Fill._meta.get_field("order")))
)
_LOCKED_ORDER = Prepared(
    lambda: (
        Order.objects.select_for_update(of=("self", "account"))
        .select_related("account", "signal")
        .filter(pk=Param("pk", Order._meta.pk))
        .order_by()
    )
)


def _count(counters: list) -> None:
    """Adds one to each (counter, labels), in one round trip to Redis."""
    if counters:
        pipe = redis_client().pipeline(transaction=False)
        for metric, labels in counters:
            metric.inc(client=pipe, **labels)
        pipe.execute()


def _update_signal(order: Order) -> None:
    fates = {
        Order.Status.FILLED: Signal.Status.FILLED,
        Order.Status.PARTIALLY_FILLED: Signal.Status.PARTIALLY_FILLED,
        Order.Status.REJECTED: Signal.Status.REJECTED,
        Order.Status.EXPIRED: Signal.Status.REJECTED,
        Order.Status.CANCELED: Signal.Status.REJECTED,
    }
    if order.status in fates:
        _SIGNAL_FATE.run(pk=order.signal_id, fate=fates[order.status],
                         status=fates[order.status], updated_at=timezone.now())  # fmt: skip


# A signal given its fate, unless it has it already.
_SIGNAL_FATE = PreparedUpdate(
    lambda: Signal.objects.filter(pk=Param("pk", Signal._meta.pk)).exclude(
        status=Param("fate", Signal._meta.get_field("status"))
    ),
    ["status", "updated_at"],
)
