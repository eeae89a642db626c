"""Fills and positions: each exchange fill stored once, with the position it moved and the
events that say so."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.utils import timezone

from trading.execution import metrics
from trading.execution.adapter import ExchangeFill
from trading.execution.recording import ZERO, OutboxEvents, order_payload, position_payload
from trading.ledger import services as ledger
from trading.ledger.book import Fill as PnlFill
from trading.ledger.book import PositionChange, apply_fill, fill_from_trade
from trading.marketdata.services import symbol_rules
from trading.models import Fill, Order, Position
from trading.prepared import Param, Prepared, save_fields


def record_fill(order: Order, fill: ExchangeFill, events: OutboxEvents, counters: list) -> Fill:
    """Stores one exchange fill and moves the position; returns the stored fill. The caller
    holds the order's lock and passes only fills not recorded yet (``unrecorded``).

    The stored fill is the trade as the book counts it (``trading.ledger.book.fill_from_trade``):
    its quantity is the base the trade moved, less a buy's commission paid in the base asset (more
    for a sell's), and its fee the commission in the quote asset, so that the position holds what
    the exchange holds and the fill's cash flow is the quote that moved."""
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


def unrecorded(order: Order, fills: Sequence[ExchangeFill]) -> list[ExchangeFill]:
    """The fills of the answer the order has not stored yet, in the answer's order, each trade
    once. ``order`` as locked: an order with nothing filled has no fill stored (each stored
    fill adds to ``filled_quantity`` in its transaction), so only one with fills is looked up."""
    if not fills:
        return []
    known: set[str] = set()
    if order.filled_quantity:
        known.update(
            Fill.objects.filter(order=order, trade_id__in=[f.trade_id for f in fills]).values_list(
                "trade_id", flat=True
            )
        )
    fresh = []
    for fill in fills:
        if fill.trade_id not in known:
            known.add(fill.trade_id)
            fresh.append(fill)
    return fresh


def _lot_step(symbol: str) -> Decimal:
    """The smallest quantity a MARKET order can trade in the symbol (zero when unknown): both
    steps apply, and Binance's steps are powers of ten, so the coarser one."""
    rules = symbol_rules().get(symbol)
    return max(rules.step_size, rules.market_step_size) if rules is not None else ZERO


def move_position(order: Order, fill: Fill, events: OutboxEvents, counters: list) -> Decimal:
    """Applies a fill to the account's open position in its symbol; returns the realized PnL."""
    found = _LOCKED_POSITION.objects(account=order.account_id, symbol=order.symbol)
    position = found[0] if found else None
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
        save_fields(position, _MOVED)
        _announce("position.changed", order, position, events, counters)
    return effect.realized_pnl


# The account's open position in a symbol, locked (at most one: a unique constraint).
_LOCKED_POSITION = Prepared(
    lambda: (
        Position.objects.select_for_update()
        .filter(
            account_id=Param("account", Position._meta.get_field("account")),
            symbol=Param("symbol", Position._meta.get_field("symbol")),
            status=Position.Status.OPEN,
        )
        .order_by("pk")[:1]
    )
)

# What a fill changes of an open position.
_MOVED = ["quantity", "average_entry_price", "cost_basis", "realized_pnl", "fees_paid", "version"]


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
    save_fields(position, [*_MOVED, "status", "closed_at"])
    _announce("position.closed", order, position, events, counters)


def _announce(
    type_: str, order: Order, position: Position, events: OutboxEvents, counters: list
) -> None:
    # Filed under the order that moved the position: the story of a closing signal ends with
    # the position it closed. The opener stays in the payload.
    events.add(type_, position_payload(position), order.correlation_id)
    if type_ == "position.opened":
        counters.append((metrics.POSITIONS_OPENED, {}))
    elif type_ == "position.closed":
        counters.append((metrics.POSITIONS_CLOSED, {}))
