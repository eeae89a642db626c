"""The ledger's arithmetic: positions on the average-cost method, balances per asset, the
account's valuation (cash, equity, exposure, unrealized PnL) and the daily PnL.

Every number the platform shows or acts on about an account's money is worked out here, and read
through ``trading.ledger.services``; nothing else computes them.

Pure: fills in, positions and PnL out, no I/O and no clock. The execution worker persists what
``apply_fill`` returns and publishes the events its ``FillEffect`` names (opened ->
``position.opened``; increased or reduced -> ``position.changed``; closed -> ``position.closed``;
flipped -> ``position.closed`` then ``position.opened``).

Money is in the quote currency (USDT for BTCUSDT) and every amount is a Decimal. The book keeps the
entry cost of the open quantity (``cost_basis``) as well as its average price: an average such as
302 / 3 does not terminate, so PnL worked from the rounded average alone would drift by dust from
the cash that actually changed hands. Working from the cost instead, the rounding of a partial
close is carried in the remaining cost and settled when the position closes, so over any round
trip realized PnL is exactly the sells' proceeds less the buys' cost.

A ``Fill`` is what a trade did to the two balances the book keeps, the base asset held and the
quote cash, which is not always the trade as the exchange reports it: a commission paid in the
base asset comes out of the base (Binance takes a buy's commission from what it bought), so
``fill_from_trade`` books that buy as the smaller quantity actually received. Spot balances end in
dust that no order can sell (less than the symbol's lot step); ``apply_fill`` closes a long to
exactly zero rather than keep it open on dust.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Context, Decimal
from enum import StrEnum
from types import MappingProxyType

ZERO = Decimal(0)

# Sums of quantity x price stay exact at this precision for any realistic book (a 28-digit
# default would round a 10-digit notional carrying 18 decimals). All arithmetic goes through it
# (or copy_abs / copy_negate, which are exact), so the caller's thread context does not matter.
_ARITHMETIC = Context(prec=50)
# The average entry price is for display and for pricing a partial close, not for summing.
_AVERAGE = Context(prec=28)
# The entry cost taken off by a partial close is rounded to this; the dust stays in the remaining
# cost and is realized when the position closes.
_COST_QUANTUM = Decimal("1e-18")


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class PositionChange(StrEnum):
    """What one fill did to the position."""

    OPENED = "opened"  # from flat
    INCREASED = "increased"  # same direction, larger
    REDUCED = "reduced"  # opposite direction, smaller but not flat
    CLOSED = "closed"  # to exactly flat
    FLIPPED = "flipped"  # through zero: closed, then the rest opened the other way


class ExitReason(StrEnum):
    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution: ``quantity`` (> 0) of the base asset bought into or sold out of the book at
    ``price`` (> 0), paying ``fee`` (>= 0, in the quote currency; rebates are not modelled), at
    ``ts`` (aware, stored in UTC). ``cash_flow`` of a fill is the quote it moved; ``quantity`` is
    the base it moved, which ``fill_from_trade`` works out from an exchange's trade."""

    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    ts: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.side, Side):
            try:
                object.__setattr__(self, "side", Side(self.side))
            except ValueError:
                raise ValueError(f"Fill.side must be BUY or SELL, got {self.side!r}") from None
        for name in ("quantity", "price"):
            if _decimal(f"Fill.{name}", getattr(self, name)) <= 0:
                raise ValueError(f"Fill.{name} must be positive, got {getattr(self, name)}")
        if _decimal("Fill.fee", self.fee) < 0:
            raise ValueError(f"Fill.fee must not be negative, got {self.fee}")
        object.__setattr__(self, "ts", _utc("Fill.ts", self.ts))

    @property
    def signed_quantity(self) -> Decimal:
        """The quantity as it moves the position: positive for a buy, negative for a sell."""
        return self.quantity if self.side is Side.BUY else self.quantity.copy_negate()

    @property
    def notional(self) -> Decimal:
        return _ARITHMETIC.multiply(self.quantity, self.price)


@dataclass(frozen=True, slots=True)
class PositionState:
    """One symbol's position and the PnL it has booked.

    ``quantity`` is signed: positive long, negative short, zero flat. ``avg_entry_price`` is the
    quantity-weighted average price of the open quantity (zero when flat), ``cost_basis`` its entry
    cost (``abs(quantity) * avg_entry_price`` up to rounding dust; derived from them when omitted,
    as when a position is loaded from a store that does not keep it). ``realized_pnl`` (gross of
    fees) and ``fees_paid`` accumulate over the life of the book, across positions opened and
    closed. ``opened_at`` is the time of the fill that opened the current position, None when flat.
    """

    symbol: str
    quantity: Decimal = ZERO
    avg_entry_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees_paid: Decimal = ZERO
    opened_at: datetime | None = None
    cost_basis: Decimal | None = None

    def __post_init__(self) -> None:
        quantity = _decimal("PositionState.quantity", self.quantity)
        avg = _decimal("PositionState.avg_entry_price", self.avg_entry_price)
        _decimal("PositionState.realized_pnl", self.realized_pnl)
        if _decimal("PositionState.fees_paid", self.fees_paid) < 0:
            raise ValueError(f"PositionState.fees_paid must not be negative, got {self.fees_paid}")
        if avg < 0:
            raise ValueError(f"PositionState.avg_entry_price must not be negative, got {avg}")
        if self.cost_basis is None:
            object.__setattr__(self, "cost_basis", _ARITHMETIC.multiply(quantity.copy_abs(), avg))
        elif _decimal("PositionState.cost_basis", self.cost_basis) < 0:
            raise ValueError(
                f"PositionState.cost_basis must not be negative, got {self.cost_basis}"
            )
        if quantity == 0 and (avg != 0 or self.cost_basis != 0):
            raise ValueError(f"a flat position has no entry price, got {avg} ({self.cost_basis})")
        if self.opened_at is not None:
            object.__setattr__(self, "opened_at", _utc("PositionState.opened_at", self.opened_at))

    @property
    def is_flat(self) -> bool:
        return self.quantity == 0

    @property
    def net_realized_pnl(self) -> Decimal:
        """Realized PnL after fees."""
        return self.realized_pnl - self.fees_paid


@dataclass(frozen=True, slots=True)
class FillEffect:
    """What ``apply_fill`` did: the change, the gross PnL this fill realized, and how much of the
    position the fill closed (dust included, when it closed a long on dust) and how much it
    opened or added."""

    change: PositionChange
    realized_pnl: Decimal
    closed_quantity: Decimal
    opened_quantity: Decimal


def apply_fill(
    state: PositionState, fill: Fill, *, lot_step: Decimal = ZERO
) -> tuple[PositionState, FillEffect]:
    """The position after ``fill``, and what the fill did to it.

    A fill in the position's direction (or from flat) adds at its price: the average entry becomes
    the quantity-weighted average. A fill against it closes quantity at the average entry, which
    stays as it was, and realizes ``closed x (price - entry)`` for a long, ``closed x (entry -
    price)`` for a short. A fill larger than the position closes it and opens the remainder the
    other way at the fill's price. The fee is added to ``fees_paid`` whatever the fill did.

    ``lot_step`` is the smallest quantity an order can trade (zero: no such rule). A sell that
    leaves a long with less than that, dust that no order can sell, closes it: the dust is written
    off at no value, its entry cost realized as a loss, since the cash it cost is spent and no
    sale will bring it back. A sell that takes a long beyond zero by less than a lot step (a
    commission in the base asset, paid out of such dust) closes it too, the excess realized at
    the fill's price at no cost. Either way realized PnL stays the trades' cash flows. A short is
    left as it is: its dust is owed, not lost.
    """
    if _decimal("lot_step", lot_step) < 0:
        raise ValueError(f"lot_step must not be negative, got {lot_step}")
    quantity = state.quantity
    direction = _sign(quantity)
    fill_direction = _sign(fill.signed_quantity)
    fees_paid = _ARITHMETIC.add(state.fees_paid, fill.fee)

    if direction == 0 or direction == fill_direction:
        change = PositionChange.OPENED if direction == 0 else PositionChange.INCREASED
        new_quantity = _ARITHMETIC.add(quantity, fill.signed_quantity)
        cost = _ARITHMETIC.add(_cost(state), fill.notional)
        new_state = PositionState(
            symbol=state.symbol,
            quantity=new_quantity,
            avg_entry_price=_AVERAGE.divide(cost, new_quantity.copy_abs()),
            realized_pnl=state.realized_pnl,
            fees_paid=fees_paid,
            opened_at=fill.ts if direction == 0 else state.opened_at,
            cost_basis=cost,
        )
        return new_state, FillEffect(change, ZERO, ZERO, fill.quantity)

    held = quantity.copy_abs()
    if direction > 0 and _ARITHMETIC.subtract(fill.quantity, held).copy_abs() < lot_step:
        return _close_long_on_dust(state, fill, fees_paid)
    if fill.quantity < held:
        closed = fill.quantity
        released = _ARITHMETIC.multiply(closed, state.avg_entry_price)
        quantized = released.quantize(_COST_QUANTUM, context=_ARITHMETIC)
        if quantized != released:  # keep 157.5 as written, not as 157.500000000000000000
            released = quantized
        # Guards against the rounding above ever taking off more than is there.
        released = min(released, _cost(state))
    else:
        # Closing all of it releases all of the cost, dust included, so round trips come out exact.
        closed = held
        released = _cost(state)
    proceeds = _ARITHMETIC.multiply(closed, fill.price)
    # A long sells what it bought; a short buys back what it sold.
    realized = _ARITHMETIC.multiply(direction, _ARITHMETIC.subtract(proceeds, released))
    realized_pnl = _ARITHMETIC.add(state.realized_pnl, realized)

    if fill.quantity < held:
        new_state = PositionState(
            symbol=state.symbol,
            quantity=_ARITHMETIC.add(quantity, fill.signed_quantity),
            avg_entry_price=state.avg_entry_price,
            realized_pnl=realized_pnl,
            fees_paid=fees_paid,
            opened_at=state.opened_at,
            cost_basis=_ARITHMETIC.subtract(_cost(state), released),
        )
        return new_state, FillEffect(PositionChange.REDUCED, realized, closed, ZERO)

    opened = _ARITHMETIC.subtract(fill.quantity, held)
    if opened == 0:
        new_state = PositionState(
            symbol=state.symbol, realized_pnl=realized_pnl, fees_paid=fees_paid
        )
        return new_state, FillEffect(PositionChange.CLOSED, realized, closed, ZERO)

    new_state = PositionState(
        symbol=state.symbol,
        quantity=_ARITHMETIC.multiply(fill_direction, opened),
        avg_entry_price=fill.price,
        realized_pnl=realized_pnl,
        fees_paid=fees_paid,
        opened_at=fill.ts,
        cost_basis=_ARITHMETIC.multiply(opened, fill.price),
    )
    return new_state, FillEffect(PositionChange.FLIPPED, realized, closed, opened)


def _close_long_on_dust(
    state: PositionState, fill: Fill, fees_paid: Decimal
) -> tuple[PositionState, FillEffect]:
    # The sell's proceeds less the whole entry cost: the dust left over sells for nothing, an
    # excess sold beyond the long cost nothing.
    proceeds = fill.notional
    realized = _ARITHMETIC.subtract(proceeds, _cost(state))
    new_state = PositionState(
        symbol=state.symbol,
        realized_pnl=_ARITHMETIC.add(state.realized_pnl, realized),
        fees_paid=fees_paid,
    )
    return new_state, FillEffect(PositionChange.CLOSED, realized, state.quantity, ZERO)


def apply_fills(
    state: PositionState, fills: Iterable[Fill], *, lot_step: Decimal = ZERO
) -> tuple[PositionState, list[tuple[Fill, FillEffect]]]:
    """``apply_fill`` over ``fills`` in order: the final state and each fill with its effect."""
    applied: list[tuple[Fill, FillEffect]] = []
    for fill in fills:
        state, effect = apply_fill(state, fill, lot_step=lot_step)
        applied.append((fill, effect))
    return state, applied


def fill_from_trade(
    side: Side | str,
    quantity: Decimal,
    price: Decimal,
    commission: Decimal,
    commission_asset: str,
    *,
    base_asset: str,
    quote_asset: str,
    ts: datetime,
) -> Fill:
    """The book's ``Fill`` for an exchange's trade of ``quantity`` at ``price`` that paid
    ``commission`` in ``commission_asset``: what the trade did to the base held and to the quote.

    - A commission in the quote asset (or in no named asset) is the fee; the trade is as traded.
    - A commission in the base asset came out of the base: a buy adds ``quantity - commission``
      to the book, a sell takes ``quantity + commission`` out of it. The fee is the commission
      at the trade's price, so the quote still moves by exactly ``quantity x price``: the book's
      fill moves ``(quantity -/+ commission) x price`` and pays that fee (buy: ``-(q - c)p - cp =
      -qp``; sell: ``(q + c)p - cp = qp``), and its cost is counted once, as a fee.
    - A commission in a third asset (BNB) came out of a balance the book does not keep: the trade
      is as traded, with no fee.

    Raises ValueError for a buy whose commission in the base asset is not less than what it
    bought, or a negative commission.
    """
    side = _side(side)
    if _decimal("commission", commission) < 0:
        raise ValueError(f"commission must not be negative, got {commission}")
    _decimal("quantity", quantity)
    _decimal("price", price)
    if commission_asset in (quote_asset, ""):
        return Fill(side=side, quantity=quantity, price=price, fee=commission, ts=ts)
    if commission_asset != base_asset:
        return Fill(side=side, quantity=quantity, price=price, fee=ZERO, ts=ts)
    if side is Side.BUY:
        if commission >= quantity:
            raise ValueError(f"a buy of {quantity} cannot pay {commission} of it in commission")
        moved = _ARITHMETIC.subtract(quantity, commission)
    else:
        moved = _ARITHMETIC.add(quantity, commission)
    fee = _ARITHMETIC.multiply(commission, price)
    return Fill(side=side, quantity=moved, price=price, fee=fee, ts=ts)


def unrealized_pnl(state: PositionState, mark: Decimal) -> Decimal:
    """What closing the whole position at ``mark`` would realize, before fees; zero when flat.

    Worked from the entry cost, so realized plus unrealized is exactly the value of the trades'
    cash flows with the open quantity marked at ``mark``.
    """
    _decimal("mark", mark)
    if state.is_flat:
        return ZERO
    value = _ARITHMETIC.multiply(state.quantity, mark)
    cost = _ARITHMETIC.multiply(_sign(state.quantity), _cost(state))
    return _ARITHMETIC.subtract(value, cost)


def realized_on_day(fills_with_effects: Iterable[tuple[Fill, FillEffect]], day: date) -> Decimal:
    """Realized PnL net of fees from the fills made on ``day`` (a UTC calendar day). Takes the
    ``(fill, effect)`` pairs that ``apply_fill`` (or ``apply_fills``) produced, in any order.
    """
    if isinstance(day, datetime):
        # A datetime is a date, but never equal to one: every fill would silently miss.
        raise TypeError(f"day must be a date, not a datetime: {day!r}")
    total = ZERO
    for fill, effect in fills_with_effects:
        if fill.ts.date() == day:  # Fill keeps ts in UTC
            total = _ARITHMETIC.add(total, _ARITHMETIC.subtract(effect.realized_pnl, fill.fee))
    return total


def cash_flow(side: Side | str, quantity: Decimal, price: Decimal, fee: Decimal) -> Decimal:
    """What one fill does to the quote balance: a sell brings its notional in, a buy pays it
    out, and the fee is paid either way. Exact, whatever the caller's decimal context."""
    notional = _ARITHMETIC.multiply(quantity, price)
    if _side(side) is Side.BUY:
        notional = notional.copy_negate()
    return _ARITHMETIC.subtract(notional, fee)


def total_cash_flow(
    fills: Iterable[tuple[Side | str, Decimal, Decimal, Decimal]], start: Decimal = ZERO
) -> Decimal:
    """``start`` plus ``cash_flow`` of each ``(side, quantity, price, fee)`` row, exactly (50
    digits, more than any book needs): the same rows give the same total in any order and any
    grouping, so a running total kept fill by fill equals the total worked out again."""
    total = start
    for side, quantity, price, fee in fills:
        total = _ARITHMETIC.add(total, cash_flow(side, quantity, price, fee))
    return total


def equity(
    cash: Decimal, positions: Iterable[PositionState], marks: Mapping[str, Decimal]
) -> Decimal:
    """The account's value: ``cash`` plus each open position's quantity at its mark.

    ``cash`` is the quote balance after every trade's cash flow and fee (buys have taken their cost
    out of it, short sales have put their proceeds in), so a short's negative quantity counts as
    the debt of buying it back. Flat positions need no mark; raises ValueError when an open
    position has none, or when a symbol appears twice.
    """
    total = _decimal("cash", cash)
    seen: set[str] = set()
    # Run for every step of a backtest: each name is spelled out only for a bad value.
    add, multiply = _ARITHMETIC.add, _ARITHMETIC.multiply
    for position in positions:
        symbol = position.symbol
        if symbol in seen:
            raise ValueError(f"position {symbol} appears more than once")
        seen.add(symbol)
        quantity = position.quantity
        if not quantity:  # flat
            continue
        mark = marks.get(symbol)
        if type(mark) is not Decimal or not mark.is_finite():
            if symbol not in marks:
                raise ValueError(f"no mark price for the open position in {symbol}")
            _decimal(f"mark of {symbol}", mark)
        total = add(total, multiply(quantity, mark))
    return total


def exit_trigger(
    state: PositionState,
    mark: Decimal,
    stop_loss_price: Decimal | None,
    take_profit_price: Decimal | None,
) -> ExitReason | None:
    """Whether ``mark`` has reached the position's stop loss or take profit; None if neither.

    A long stops out at or below its stop and takes profit at or above its target; a short the
    other way round. Either level may be None (not set). If both are reached at once, which only a
    stop set beyond the target can cause, the stop loss wins. A flat position never triggers.
    """
    _decimal("mark", mark)
    if state.is_flat:
        return None
    long = state.quantity > 0
    if stop_loss_price is not None:
        stop = _decimal("stop_loss_price", stop_loss_price)
        if (mark <= stop) if long else (mark >= stop):
            return ExitReason.STOP_LOSS
    if take_profit_price is not None:
        target = _decimal("take_profit_price", take_profit_price)
        if (mark >= target) if long else (mark <= target):
            return ExitReason.TAKE_PROFIT
    return None


# -- accounts: balances per asset, valuation, daily PnL ------------------------------------------


class AccountKind(StrEnum):
    """What an account may do. Spot follows Binance spot: balances per asset, nothing sold that
    is not held, nothing bought beyond the free quote balance, leverage 1. Futures is a USDⓈ-M
    perpetual account (``trading.ledger.futures``): cross margin, one-way, leverage per symbol,
    shorts, initial and maintenance margin by Binance's brackets, liquidation, reduce-only."""

    SPOT = "spot"
    FUTURES = "futures"


@dataclass(frozen=True, slots=True)
class AssetBalance:
    """One asset of an account, as Binance's ``GET /api/v3/account`` reports it: ``free`` to
    trade, ``locked`` held by open orders."""

    asset: str
    free: Decimal
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return _ARITHMETIC.add(self.free, self.locked)


def fill_moves(
    side: Side | str, quantity: Decimal, price: Decimal, fee: Decimal, *, base: str, quote: str
) -> dict[str, Decimal]:
    """What one booked fill does to each asset: the base moves by its quantity (in for a buy,
    out for a sell), the quote by ``cash_flow``."""
    moved = quantity if _side(side) is Side.BUY else quantity.copy_negate()
    return {base: moved, quote: cash_flow(side, quantity, price, fee)}


def spot_shortfall(
    side: Side | str,
    quantity: Decimal,
    price: Decimal,
    fee_rate: Decimal,
    free: Mapping[str, Decimal],
    *,
    base: str,
    quote: str,
) -> str | None:
    """Why a spot order for ``quantity`` at ``price`` cannot be paid for from the ``free``
    balances (an asset missing from them has none), or None when it can: a SELL needs the
    quantity in the base asset, a BUY its cost plus the fee at ``fee_rate`` in the quote asset."""
    if _side(side) is Side.SELL:
        held = free.get(base, ZERO)
        if quantity > held:
            return f"SELL {_plain(quantity)} {base} > free {_plain(held)} {base}"
        return None
    notional = _ARITHMETIC.multiply(quantity, price)
    cost = _ARITHMETIC.add(notional, _ARITHMETIC.multiply(notional, fee_rate))
    cash = free.get(quote, ZERO)
    if cost > cash:
        return f"BUY costs {_plain(cost)} {quote} with fees > free {_plain(cash)} {quote}"
    return None


@dataclass(frozen=True, slots=True)
class Valuation:
    """An account at its marks. ``exposure`` is ``|quantity| x mark`` per open symbol;
    ``unrealized_pnl`` the sum of ``unrealized_pnl`` over the open positions."""

    cash: Decimal
    market_value: Decimal
    exposure: Mapping[str, Decimal]
    unrealized_pnl: Decimal
    unrealized_by_symbol: Mapping[str, Decimal]

    @property
    def equity(self) -> Decimal:
        return _ARITHMETIC.add(self.cash, self.market_value)

    @property
    def total_exposure(self) -> Decimal:
        return sum(self.exposure.values(), ZERO)


def value_account(
    cash: Decimal, positions: Iterable[PositionState], marks: Mapping[str, Decimal]
) -> Valuation:
    """The account's valuation: ``cash`` (the quote balance after every fill) and each open
    position at its mark. A position whose symbol has no mark is valued at its average entry
    price (no gain, no loss) rather than left out, which would take its cost out of equity."""
    value = ZERO
    exposure: dict[str, Decimal] = {}
    unrealized: dict[str, Decimal] = {}
    for position in positions:
        if position.is_flat:
            continue
        if position.symbol in exposure:
            raise ValueError(f"position {position.symbol} appears more than once")
        mark = marks.get(position.symbol, position.avg_entry_price)
        worth = _ARITHMETIC.multiply(position.quantity, mark)
        value = _ARITHMETIC.add(value, worth)
        exposure[position.symbol] = worth.copy_abs()
        unrealized[position.symbol] = unrealized_pnl(position, mark)
    return Valuation(
        cash=_decimal("cash", cash),
        market_value=value,
        exposure=MappingProxyType(exposure),
        unrealized_pnl=sum(unrealized.values(), ZERO),
        unrealized_by_symbol=MappingProxyType(unrealized),
    )


def open_value(
    positions: Iterable[PositionState], marks: Mapping[str, Decimal]
) -> tuple[Decimal, Decimal]:
    """The open positions' market value and unrealized PnL, the two sums of ``value_account``
    without its per-symbol maps: what a check of the book needs, worked out per order."""
    value = ZERO
    unrealized = ZERO
    for position in positions:
        if position.is_flat:
            continue
        mark = marks.get(position.symbol, position.avg_entry_price)
        value = _ARITHMETIC.add(value, _ARITHMETIC.multiply(position.quantity, mark))
        # Added as ``value_account``'s sum adds them: in the caller's context, from zero.
        unrealized = unrealized + unrealized_pnl(position, mark)
    return value, unrealized


def initial_margin(notional: Decimal, leverage: int) -> Decimal:
    """``|notional| / leverage``, the margin a futures position or order holds. Raises
    ValueError for a leverage below 1."""
    if leverage < 1:
        raise ValueError(f"leverage must be at least 1, got {leverage}")
    return _ARITHMETIC.divide(notional.copy_abs(), Decimal(leverage))


def order_hold(
    kind: AccountKind,
    side: Side | str,
    remaining: Decimal,
    price: Decimal,
    fee_rate: Decimal,
    *,
    base: str,
    quote: str,
    leverage: int = 1,
    reduce_only: bool = False,
) -> tuple[str, Decimal]:
    """The asset and amount an open order holds for its unfilled ``remaining`` quantity at its
    reference ``price``: on a spot account a SELL the quantity of the base asset, a BUY its cost
    with the fee at ``fee_rate`` in the quote asset; on a futures account the initial margin of
    what it opens (a reduce-only order opens nothing) and the fee, in the quote asset."""
    if kind == AccountKind.FUTURES:
        notional = remaining * price
        opening = ZERO if reduce_only else initial_margin(notional, leverage)
        return quote, opening + notional * fee_rate
    if side == Side.SELL:
        return base, remaining
    notional = remaining * price
    return quote, notional + notional * fee_rate


def unrealized_at_open(
    quantities: Mapping[str, Decimal],
    marks: Mapping[str, Decimal],
    cash_flows: Decimal,
    net_realized: Decimal,
) -> Decimal:
    """The unrealized PnL of the positions held at a moment (the day's 00:00 UTC), from what
    the fills before it add up to: ``quantities`` held per symbol, the sum of their
    ``cash_flow`` and their realized PnL net of fees, with ``marks`` the prices at the moment.

    The fills' cash flows are their net realized PnL less the entry cost still held, so the
    cost of the open positions is ``net_realized - cash_flows`` and the unrealized PnL is their
    value less that cost; no replay of the fills is needed. Raises ValueError when a held
    symbol has no mark."""
    value = ZERO
    for symbol, quantity in quantities.items():
        if not quantity:
            continue
        if symbol not in marks:
            raise ValueError(f"no mark for {symbol}, held at the open")
        value = _ARITHMETIC.add(value, _ARITHMETIC.multiply(quantity, marks[symbol]))
    return _ARITHMETIC.subtract(_ARITHMETIC.add(value, cash_flows), net_realized)


def daily_pnl(
    realized_today: Decimal, unrealized_now: Decimal, unrealized_open: Decimal
) -> Decimal:
    """The PnL since 00:00 UTC: realized PnL net of fees of today's fills plus the change of
    unrealized PnL since the day's open, which is the change of equity since 00:00 when no cash
    came in or went out: realized and unrealized together count every fill's cash flow and
    every holding at its mark once."""
    return _ARITHMETIC.add(realized_today, _ARITHMETIC.subtract(unrealized_now, unrealized_open))


def exact_sum(*values: Decimal) -> Decimal:
    """The sum of ``values``, exact whatever the caller's decimal context."""
    total = ZERO
    for value in values:
        total = _ARITHMETIC.add(total, value)
    return total


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _cost(state: PositionState) -> Decimal:
    assert state.cost_basis is not None  # set by PositionState.__post_init__
    return state.cost_basis


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


_SIDES = {side.value: side for side in Side}


def _side(value: object) -> Side:
    # The enum's own lookup by value, without its call: this runs several times per fill.
    if isinstance(value, str) and (found := _SIDES.get(value)) is not None:
        return found
    return Side(value)


def _decimal(name: str, value: object) -> Decimal:
    # A float would bring its binary rounding error in; only Decimals are taken.
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{name} must be a finite Decimal, got {value!r}")
    return value


def _utc(name: str, moment: object) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)
