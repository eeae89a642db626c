"""Execution: from a signal to orders, fills and positions, exactly once.

Guarantees, whatever the number of deliveries of a task:

- A signal leaves ``pending`` once (a conditional update); a redelivered task finds it decided.
- An order's client order id is derived from the signal's correlation id and is unique in the
  database, so a signal has at most one order; the exchange refuses a second order with that id.
- A fill is unique per (order, trade id), so a fill reported twice moves the position once.
- An ambiguous exchange answer (timeout, 5xx) leaves the order UNKNOWN until it is looked up;
  nothing is sent again before that.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from trading import bus
from trading.events import outbox
from trading.events.envelope import Event, new_event
from trading.execution import decisions, metrics
from trading.execution.adapter import (
    ExchangeAdapter,
    ExchangeError,
    ExchangeFill,
    OrderRequest,
    OrderResult,
    OrderStatus,
    client_order_id_for,
)
from trading.execution.intake import signal_payload
from trading.ledger import services as ledger
from trading.ledger.book import (
    AccountKind,
    PositionChange,
    apply_fill,
    exit_trigger,
    fill_from_trade,
)
from trading.ledger.book import Fill as PnlFill
from trading.marketdata.bars import Bar
from trading.marketdata.prices import latest_prices, latest_quote, latest_quotes
from trading.marketdata.services import symbol_rules
from trading.models import Account, Fill, Order, Position, Signal
from trading.risk import services as risk
from trading.risk.checks import OrderIntent, evaluate
from trading.risk.reasons import AlertReason, Reason
from trading.store import redis_client, rkey

logger = logging.getLogger(__name__)
ZERO = Decimal("0")
SERVICE = "exec-risk"


@functools.cache
def _adapter(kind: str) -> ExchangeAdapter:
    if kind == "binance":
        from trading.execution.binance import BinanceAdapter, BinanceConfig

        return BinanceAdapter(BinanceConfig.from_env())
    from trading.execution.paper import PaperConfig
    from trading.execution.paper_exchange import PaperExchange

    return PaperExchange(
        PaperConfig(
            maker_fee_rate=settings.PAPER_MAKER_FEE_RATE,
            taker_fee_rate=settings.PAPER_TAKER_FEE_RATE,
            slippage_bps=settings.PAPER_SLIPPAGE_BPS,
            max_volume_share=settings.PAPER_MAX_VOLUME_SHARE,
        )
    )


def exchange(account: Account | None = None) -> ExchangeAdapter:
    """The configured exchange, one per process (built after the worker forks). A sandbox
    account (the system checks') always trades on the paper exchange, whatever is configured.
    On the paper exchange each account trades from a balance book of its own."""
    if account is not None and (account.is_sandbox or settings.EXCHANGE == "paper"):
        paper = _adapter("paper")
        return paper.for_account(  # type: ignore[attr-defined]
            paper_book(account), account.starting_cash, margin=ledger.is_futures(account)
        )
    return _adapter(settings.EXCHANGE)


def paper_book(account: Account) -> str:
    """The account's balance book on the paper exchange: its name and creation time, so that an
    account made again under an old name starts from its own starting cash."""
    return f"{account.name}-{int(account.created_at.timestamp() * 1_000_000)}"


class _Events:
    """Events collected inside a transaction, written to the outbox with it."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, type_: str, payload: dict, correlation_id: uuid.UUID | str) -> None:
        self.events.append(
            new_event(type_, payload, service=SERVICE, correlation_id=str(correlation_id))
        )

    def record(self, *, notify: bool = True) -> None:
        """Writes the events to the outbox in the current transaction; once they are in the log
        analytics is told there is something to read. ``notify=False`` where the signal's story
        goes on at once and analytics is told at its next step, which reads everything before
        it too: the message costs about a millisecond, on the signal's way to its fill."""
        outbox.record(self.events, then=outbox.ANALYTICS_NUDGE if notify else None)


# --- signals --------------------------------------------------------------------------------


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
    signal = Signal.objects.select_related("account").get(pk=signal_id)
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
        reduce_only=signal.reduce_only,
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
    return Signal.objects.get(pk=signal.pk)


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
        events = _Events()
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
            updated = Signal.objects.filter(pk=signal.pk, status=Signal.Status.PENDING).update(
                status=Signal.Status.SUBMITTED, updated_at=timezone.now()
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
                reduce_only=signal.reduce_only,
            )
            if ledger.is_futures(signal.account):
                # The symbol's leverage is the one the order's margin is held at.
                ledger.set_leverage(signal.account, signal.symbol, leverage)
            ledger.lock_order(order)
            events = _Events()
            events.add("order.requested", order_payload(order), order.correlation_id)
            # The order goes to the exchange now; analytics is told with its answer.
            events.record(notify=False)
    except IntegrityError:
        return None
    return order


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


# --- orders ---------------------------------------------------------------------------------


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
        events = _Events()
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


def _recorded(order: Order, fill: ExchangeFill) -> bool:
    return Fill.objects.filter(order=order, trade_id=fill.trade_id).exists()


def apply_order_result(order_id: int, result: OrderResult) -> Order:
    """Records an exchange answer: new fills and the cash they moved, the order's status, the
    signal's fate, positions."""
    events = _Events()
    counters: list = []
    with transaction.atomic():
        # Locks the order and its account's row (on PostgreSQL, one answer at a time per
        # account); the signal comes along unlocked, for the position a fill may open (a
        # flatten order has none: an outer join, which PostgreSQL cannot lock).
        order = (
            Order.objects.select_for_update(of=("self", "account"))
            .select_related("account", "signal")
            .get(pk=order_id)
        )
        result, note = _with_fills(order, result)
        held = ledger.order_lock(order)[1]
        if order.status in (Order.Status.NEW, Order.Status.UNKNOWN):
            # The exchange has the order: said before any of its fills, as it happened.
            events.add("order.submitted", order_payload(order, status="submitted"),
                       order.correlation_id)  # fmt: skip
        fresh = [f for f in result.fills if not _recorded(order, f)]
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
        traded = [f for f in fresh if record_fill(order, f, events, counters)]
        if traded:
            # The balances the new fills moved, as the database stored them.
            new = Fill.objects.filter(order=order, trade_id__in=[f.trade_id for f in traded])
            ledger.record_fills(order, list(new), held)
        else:
            ledger.release_order(order, held)
        order.exchange_order_id = result.exchange_order_id or order.exchange_order_id
        fields = ["filled_quantity", "average_price", "exchange_order_id", "status", "updated_at"]
        if note:
            order.error = note[:300]
            fields.append("error")
        order.save(update_fields=fields)
        if order.signal_id:
            _update_signal(order)
        events.record()
    if status == Order.Status.FILLED and previous != Order.Status.FILLED:
        counters.append((metrics.ORDERS_EXECUTED, {}))
    _count(counters)
    if traded:
        risk.apply_automatic_state(order.account, latest_prices())
    return order


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
        Signal.objects.filter(pk=order.signal_id).exclude(status=fates[order.status]).update(
            status=fates[order.status], updated_at=timezone.now()
        )


def record_fill(order: Order, fill: ExchangeFill, events: _Events, counters: list) -> Fill | None:
    """Stores one exchange fill and moves the position; returns the stored fill, or None if it
    was already recorded.

    The stored fill is the trade as the book counts it (``trading.ledger.book.fill_from_trade``):
    its quantity is the base the trade moved, less a buy's commission paid in the base asset (more
    for a sell's), and its fee the commission in the quote asset, so that the position holds what
    the exchange holds and the fill's cash flow is the quote that moved."""
    if Fill.objects.filter(order=order, trade_id=fill.trade_id).exists():
        return None
    base, quote = ledger.assets_of(order.symbol)
    booked = fill_from_trade(
        order.side,
        fill.quantity,
        fill.price,
        fill.commission,
        fill.commission_asset,
        base_asset=base,
        quote_asset=quote,
        ts=timezone.now(),
    )
    row = Fill(
        order=order,
        trade_id=fill.trade_id,
        symbol=order.symbol,
        side=order.side,
        quantity=booked.quantity,
        price=booked.price,
        fee=booked.fee,
        fee_asset=fill.commission_asset or quote,
        ts=booked.ts,
    )
    events.add(
        "order.filled",
        order_payload(order, trade_id=fill.trade_id, fill_quantity=str(fill.quantity),
                      fill_price=str(fill.price), fee=str(booked.fee),
                      commission=str(fill.commission), commission_asset=row.fee_asset),
        order.correlation_id,
    )  # fmt: skip
    counters.append((metrics.FILLS, {"symbol": order.symbol}))
    # The position moves first, so that the fill is stored once, with the PnL it realized.
    row.realized_pnl = move_position(order, row, events, counters)
    row.save(force_insert=True)
    return row


def _lot_step(symbol: str) -> Decimal:
    """The smallest quantity a MARKET order can trade in the symbol (zero when unknown): both
    steps apply, and Binance's steps are powers of ten, so the coarser one."""
    rules = symbol_rules().get(symbol)
    return max(rules.step_size, rules.market_step_size) if rules is not None else ZERO


def move_position(order: Order, fill: Fill, events: _Events, counters: list) -> Decimal:
    """Applies a fill to the account's open position in its symbol; returns the realized PnL."""
    position = (
        Position.objects.select_for_update()
        .filter(account=order.account, symbol=order.symbol, status=Position.Status.OPEN)
        .first()
    )
    if position is not None:
        position.account = order.account  # for its events, without loading it again
    state = ledger.position_state(position, order.symbol)
    pnl_fill = PnlFill(side=fill.side, quantity=fill.quantity, price=fill.price, fee=fill.fee,
                       ts=fill.ts)  # fmt: skip
    new_state, effect = apply_fill(state, pnl_fill, lot_step=_lot_step(order.symbol))
    if effect.change is PositionChange.FLIPPED:
        # The fill closes the old position and opens the opposite one with the rest.
        closing_fee = fill.fee * effect.closed_quantity / fill.quantity
        _close(order, position, state, effect.realized_pnl, closing_fee, fill, events, counters)
        _open(order, new_state, fill, fees=fill.fee - closing_fee, realized=ZERO, events=events,
              counters=counters)  # fmt: skip
    elif position is None:
        _open(order, new_state, fill, fees=new_state.fees_paid, realized=new_state.realized_pnl,
              events=events, counters=counters)  # fmt: skip
    elif effect.change is PositionChange.CLOSED:
        _close(order, position, state, effect.realized_pnl, fill.fee, fill, events, counters)
    else:
        position.quantity = new_state.quantity
        position.average_entry_price = new_state.avg_entry_price
        position.cost_basis = new_state.cost_basis
        position.realized_pnl = new_state.realized_pnl
        position.fees_paid = new_state.fees_paid
        position.version += 1
        position.save()
        _announce("position.changed", order, position, events, counters)
    return effect.realized_pnl


def _open(order, state, fill, *, fees, realized, events, counters) -> None:
    signal = order.signal
    opened = Position.objects.create(
        account=order.account,
        symbol=order.symbol,
        quantity=state.quantity,
        average_entry_price=state.avg_entry_price,
        cost_basis=state.cost_basis,
        realized_pnl=realized,
        fees_paid=fees,
        correlation_id=order.correlation_id,
        opened_at=fill.ts,
        stop_loss_price=getattr(signal, "stop_loss_price", None),
        take_profit_price=getattr(signal, "take_profit_price", None),
    )
    _announce("position.opened", order, opened, events, counters)


def _close(order, position, state, realized, fee, fill, events, counters) -> None:
    position.quantity = ZERO
    position.cost_basis = ZERO
    position.realized_pnl = state.realized_pnl + realized
    position.fees_paid = state.fees_paid + fee
    position.status = Position.Status.CLOSED
    position.closed_at = fill.ts
    position.version += 1
    position.save()
    _announce("position.closed", order, position, events, counters)


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


def _announce(
    type_: str, order: Order, position: Position, events: _Events, counters: list
) -> None:
    # Filed under the order that moved the position: the story of a closing signal ends with
    # the position it closed. The opener stays in the payload.
    events.add(type_, position_payload(position), order.correlation_id)
    if type_ == "position.opened":
        counters.append((metrics.POSITIONS_OPENED, {}))
    elif type_ == "position.closed":
        counters.append((metrics.POSITIONS_CLOSED, {}))


# --- bars, exits, flattening ----------------------------------------------------------------


def on_bar(bar: Bar) -> None:
    """A closed bar: open paper orders fill further, and stop-loss / take-profit levels fire."""
    # The paper exchange fills on bars (the configured venue's, or the sandbox's).
    paper = _adapter("paper")
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


# A signal still pending after this long lost its task: a worker died holding it (the broker
# would give the message back only after its visibility timeout, an hour).
STALE_SIGNAL = timedelta(seconds=30)


def requeue_stale_signals(older_than: timedelta = STALE_SIGNAL) -> list[str]:
    """Sends every signal left pending too long to exec-risk again. Safe: processing a signal
    twice places at most one order."""
    cutoff = timezone.now() - older_than
    stale = [
        str(pk)
        for pk in Signal.objects.filter(
            status=Signal.Status.PENDING, created_at__lt=cutoff
        ).values_list("pk", flat=True)
    ]
    for signal_id in stale:
        bus.send(bus.PROCESS_SIGNAL, signal_id)
    if stale:
        logger.warning("re-sent %d signals left pending since before %s", len(stale), cutoff)
    return stale


# When a worker starts, whatever is pending may have been held by a worker that died: it is all
# sent again (a signal that was still queued is then processed twice, which is harmless).
STARTUP_STALE_SIGNAL = timedelta(0)


def reconcile_exchange(startup: bool = False) -> dict:
    """Refreshes symbol rules, records whether the exchange answers, settles every order in
    doubt (UNKNOWN, or open on our side) with the exchange's view, and re-sends signals whose
    task was lost. At start-up, first checks every account's cash against its fills."""
    from trading.execution.health import record_exchange_status
    from trading.marketdata.services import refresh_symbol_rules

    checked = {"cash_rebuilt": ledger.verify_balances()} if startup else {}
    venue = exchange()
    try:
        venue.ping()
    except ExchangeError as error:
        record_exchange_status(venue.name, False, str(error))
        return {"exchange": "unreachable", "error": str(error), **checked}
    record_exchange_status(venue.name, True)
    source = refresh_symbol_rules(venue, list(settings.SYMBOLS))
    settled = []
    for order in Order.objects.filter(status__in=Order.OPEN_STATUSES):
        try:
            settled.append(reconcile_order(order.pk).status)
        except ExchangeError as error:
            logger.warning("could not reconcile %s: %s", order.client_order_id, error)
    strangers = []
    mismatched: dict = {}
    try:
        known = set(Order.objects.values_list("client_order_id", flat=True))
        strangers = [o for o in venue.open_orders() if o.client_order_id not in known]
        account = Account.objects.filter(name=risk.MAIN_ACCOUNT).first()
        held = exchange(account).balances() if account is not None else venue.balances()
        record_exchange_balances(held)
        if startup and account is not None:
            mismatched = reconcile_balances(account, held)
    except ExchangeError as error:
        logger.warning("could not read open orders or balances: %s", error)
    for stranger in strangers:
        # An order the platform did not place: an operator must look at it.
        metrics.RISK_ALERTS.inc(reason=AlertReason.UNKNOWN_EXCHANGE_ORDER)
        outbox.record([new_event("risk.alert", {
            "reason": AlertReason.UNKNOWN_EXCHANGE_ORDER,
            "client_order_id": stranger.client_order_id,
            "symbol": stranger.symbol, "side": stranger.side,
            "quantity": str(stranger.orig_quantity)}, service=SERVICE)])  # fmt: skip
    return {
        "exchange": "ok",
        "symbol_rules": source,
        "orders_reconciled": len(settled),
        "unknown_exchange_orders": len(strangers),
        "balances_mismatched": sorted(mismatched),
        "signals_requeued": len(
            requeue_stale_signals(STARTUP_STALE_SIGNAL if startup else STALE_SIGNAL)
        ),
        **checked,
    }


def reconcile_balances(account: Account, held: list) -> dict:
    """Compares the account's ledger with the balances its exchange ``held`` once every order in
    doubt is settled (``trading.ledger.services.reconcile_balances`` says which side wins: the
    exchange's cash on a live venue, the ledger on the paper exchange). An order still open may
    have filled unrecorded, which would read as a transfer: then nothing is compared."""
    if Order.objects.filter(account=account, status__in=Order.OPEN_STATUSES).exists():
        logger.warning("balances of %s not reconciled: orders are still open", account)
        return {}
    return ledger.reconcile_balances(account, held, follow=exchange(account).name != "paper")


def record_exchange_balances(balances) -> None:
    """The exchange's balances as last read, for the portfolio page and the health check."""
    import json

    redis_client().set(
        rkey("exchange", "balances"),
        json.dumps({b.asset: {"free": str(b.free), "locked": str(b.locked)} for b in balances}),
    )


def snapshot_equity(account: Account) -> None:
    """Records the account's equity, cash, exposure and PnL now (the equity curve)."""
    ledger.snapshot_equity(account, latest_prices())
