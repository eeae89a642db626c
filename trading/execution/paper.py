"""The paper exchange's fill model: what an order would get from one bar of market data.

Pure functions of the order, the bar and a ``PaperConfig``; the paper adapter around them keeps the
orders, feeds them bars and records the fills. A bar can fill only a share of its own volume
(``max_volume_share``), shared by every order on the symbol in that bar, so a large order fills
in parts: each call fills what the bar allows and returns the quantity still ``remaining``, and the
adapter offers that remainder to the next bar (with ``already_filled`` starting from zero again)
until it is filled or cancelled. Each part is a fill of its own (an ``order.filled`` event with
partial quantity).

Market orders are takers: they pay the taker fee at the bar's close moved against them by
``slippage_bps``, rounded to the tick against them too. Limit orders rest as makers and fill at
their limit price, with the maker fee, once a bar trades through it.

Quantities must lie on the symbol's step size and fills are rounded down to it; fees are exact
(rate x quantity x price, not rounded). Returns None whenever nothing fills.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from enum import StrEnum

from trading.ledger.book import Side

ZERO = Decimal(0)
_BPS = Decimal(10_000)
_ARITHMETIC = Context(prec=50)


class Liquidity(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """Fee rates are fractions of notional (0.001 is 0.1%); ``slippage_bps`` is how far, in basis
    points of the close, a market order's price moves against it; ``max_volume_share`` is the most
    of one bar's volume the paper exchange will fill (0.1 is 10%)."""

    maker_fee_rate: Decimal = Decimal("0.001")
    taker_fee_rate: Decimal = Decimal("0.001")
    slippage_bps: Decimal = Decimal("5")
    max_volume_share: Decimal = Decimal("0.1")

    def __post_init__(self) -> None:
        for name in ("maker_fee_rate", "taker_fee_rate"):
            rate = _decimal(f"PaperConfig.{name}", getattr(self, name))
            if not 0 <= rate < 1:
                raise ValueError(f"PaperConfig.{name} must be in [0, 1), got {rate}")
        slippage = _decimal("PaperConfig.slippage_bps", self.slippage_bps)
        if not 0 <= slippage < _BPS:
            raise ValueError(f"PaperConfig.slippage_bps must be in [0, 10000), got {slippage}")
        share = _decimal("PaperConfig.max_volume_share", self.max_volume_share)
        if not 0 < share <= 1:
            raise ValueError(f"PaperConfig.max_volume_share must be in (0, 1], got {share}")


@dataclass(frozen=True, slots=True)
class SimFill:
    """One simulated fill: ``quantity`` at ``price`` paying ``fee`` (quote currency), and the
    order's quantity still unfilled after it (``remaining``, zero when the order is done)."""

    quantity: Decimal
    price: Decimal
    fee: Decimal
    remaining: Decimal
    liquidity: Liquidity

    @property
    def notional(self) -> Decimal:
        return _ARITHMETIC.multiply(self.quantity, self.price)

    @property
    def is_complete(self) -> bool:
        return self.remaining == 0


def bar_capacity(
    bar_volume: Decimal, config: PaperConfig, already_filled: Decimal = ZERO
) -> Decimal:
    """How much more of a bar's volume the paper exchange may fill: ``max_volume_share`` of
    ``bar_volume`` less what it has ``already_filled`` in that bar; never negative."""
    if _decimal("bar_volume", bar_volume) < 0:
        raise ValueError(f"bar_volume must not be negative, got {bar_volume}")
    if _decimal("already_filled", already_filled) < 0:
        raise ValueError(f"already_filled must not be negative, got {already_filled}")
    allowed = _ARITHMETIC.multiply(config.max_volume_share, bar_volume)
    return max(ZERO, _ARITHMETIC.subtract(allowed, already_filled))


def simulate_market_fill(
    side: Side,
    quantity: Decimal,
    bar_close: Decimal,
    bar_volume: Decimal,
    config: PaperConfig,
    already_filled: Decimal = ZERO,
    *,
    tick_size: Decimal,
    step_size: Decimal,
) -> SimFill | None:
    """The fill a market order for ``quantity`` (its unfilled part) gets from a bar, or None.

    Fills ``min(quantity, bar_capacity(...))`` rounded down to ``step_size``, where
    ``already_filled`` is what this bar has already filled for any order on the symbol. The price
    is ``bar_close`` moved ``slippage_bps`` against the taker (up for a buy, down for a sell), then
    rounded to ``tick_size`` against the taker again (but never below one tick); the fee is
    ``taker_fee_rate`` x notional.
    None when the bar has no volume left for it. The ``remaining`` quantity carries over to later
    bars. Raises ValueError if ``quantity`` is not a positive multiple of ``step_size``.
    """
    side = _side(side)
    filled = _fillable(quantity, bar_volume, config, already_filled, step_size)
    if filled is None:
        return None
    price = taker_price(side, bar_close, config, tick_size=tick_size)
    return _sim_fill(quantity, filled, price, config.taker_fee_rate, Liquidity.TAKER)


def taker_price(
    side: Side, bar_close: Decimal, config: PaperConfig, *, tick_size: Decimal
) -> Decimal:
    """The price a market order takes from a bar: ``bar_close`` moved ``slippage_bps`` against
    the taker, rounded to ``tick_size`` against the taker again (never below one tick)."""
    side = _side(side)
    close = _positive("bar_close", bar_close)
    tick = _positive("tick_size", tick_size)
    slip = _ARITHMETIC.divide(config.slippage_bps, _BPS)
    if side is Side.BUY:
        return _to_grid(_ARITHMETIC.multiply(close, 1 + slip), tick, ROUND_CEILING)
    # No exchange takes a price below one tick, however far a cheap coin's close slips.
    return max(tick, _to_grid(_ARITHMETIC.multiply(close, 1 - slip), tick, ROUND_FLOOR))


def taker_cost(quantity: Decimal, price: Decimal, config: PaperConfig) -> Decimal:
    """What a market BUY of ``quantity`` at ``price`` pays in the quote asset, taker fee
    included, exactly as ``simulate_market_fill`` charges it."""
    notional = _ARITHMETIC.multiply(quantity, price)
    return _ARITHMETIC.add(notional, _ARITHMETIC.multiply(config.taker_fee_rate, notional))


def affordable_quantity(
    budget: Decimal, price: Decimal, config: PaperConfig, *, step_size: Decimal
) -> Decimal:
    """The largest quantity on ``step_size`` whose ``taker_cost`` at ``price`` fits ``budget``
    (zero when none does)."""
    if budget <= 0:
        return ZERO
    unit = _ARITHMETIC.multiply(price, 1 + config.taker_fee_rate)
    quantity = _to_grid(_ARITHMETIC.divide(budget, unit), step_size, ROUND_FLOOR)
    while quantity > 0 and taker_cost(quantity, price, config) > budget:
        quantity = _ARITHMETIC.subtract(quantity, step_size)
    return max(quantity, ZERO)


@dataclass(frozen=True, slots=True)
class BookedTrade:
    """What one market fill of ``quantity`` at ``price`` does to a spot book: the base and
    quote it moves, the fee, and what it uses up of the order's hold (``spent``: a BUY's cost
    with its fee, a SELL's quantity)."""

    quantity: Decimal
    price: Decimal
    fee: Decimal
    base_move: Decimal
    quote_move: Decimal
    spent: Decimal


def placement_hold(
    side: Side, quantity: Decimal, bar_close: Decimal, config: PaperConfig, *, tick_size: Decimal
) -> Decimal:
    """What a market order for ``quantity`` needs free to be placed, as Binance spot checks it:
    a SELL its quantity of the base asset, a BUY its ``taker_cost`` at the ``taker_price`` of
    ``bar_close`` in the quote asset."""
    if _side(side) is Side.SELL:
        return quantity
    return taker_cost(quantity, taker_price(side, bar_close, config, tick_size=tick_size), config)


def book_trade(
    side: Side,
    quantity: Decimal,
    price: Decimal,
    config: PaperConfig,
    *,
    held: Decimal,
    free_quote: Decimal,
    step_size: Decimal,
) -> BookedTrade | None:
    """The part of a market fill of ``quantity`` at ``price`` that the book pays for, and what
    it moves; None when it pays for none of it. A SELL's quantity was held in full when it was
    placed; a BUY's rest may cost more than its ``held`` amount, and the ``free_quote``
    balance pays the excess, down to the step that still fits."""
    side = _side(side)
    amount = quantity
    if side is Side.BUY:
        budget = max(ZERO, _ARITHMETIC.add(held, free_quote))
        if taker_cost(amount, price, config) > budget:
            amount = affordable_quantity(budget, price, config, step_size=step_size)
    if amount <= 0:
        return None
    notional = _ARITHMETIC.multiply(amount, price)
    fee = _ARITHMETIC.multiply(config.taker_fee_rate, notional)
    if side is Side.BUY:
        return BookedTrade(amount, price, fee, amount,
                           _ARITHMETIC.subtract(notional.copy_negate(), fee),
                           _ARITHMETIC.add(notional, fee))  # fmt: skip
    return BookedTrade(amount, price, fee, amount.copy_negate(),
                       _ARITHMETIC.subtract(notional, fee), amount)  # fmt: skip


def simulate_limit_fill(
    side: Side,
    quantity: Decimal,
    limit_price: Decimal,
    bar_high: Decimal,
    bar_low: Decimal,
    bar_volume: Decimal,
    config: PaperConfig,
    already_filled: Decimal = ZERO,
    *,
    step_size: Decimal,
) -> SimFill | None:
    """The fill a resting limit order for ``quantity`` (its unfilled part) gets from a bar, or None.

    It fills only when the bar trades through the limit: a low strictly below a buy's limit, a high
    strictly above a sell's. A bar that merely touches the limit does not fill it, because the
    order's place in the queue at that price is unknown. The fill is at ``limit_price`` with the
    maker fee, and its quantity is capped as for a market order (``bar_capacity``, rounded down to
    ``step_size``); the ``remaining`` quantity keeps resting for later bars. An order that was
    marketable when placed would have crossed the book as a taker; that is for the caller to
    simulate with ``simulate_market_fill``. Raises ValueError if ``quantity`` is not a positive
    multiple of ``step_size`` or the bar's high is below its low.
    """
    side = _side(side)
    limit = _positive("limit_price", limit_price)
    high = _positive("bar_high", bar_high)
    low = _positive("bar_low", bar_low)
    if high < low:
        raise ValueError(f"bar_high {high} is below bar_low {low}")
    filled = _fillable(quantity, bar_volume, config, already_filled, step_size)
    traded_through = low < limit if side is Side.BUY else high > limit
    if filled is None or not traded_through:
        return None
    return _sim_fill(quantity, filled, limit, config.maker_fee_rate, Liquidity.MAKER)


def _fillable(
    quantity: Decimal,
    bar_volume: Decimal,
    config: PaperConfig,
    already_filled: Decimal,
    step_size: Decimal,
) -> Decimal | None:
    step = _positive("step_size", step_size)
    wanted = _positive("quantity", quantity)
    if _to_grid(wanted, step, ROUND_FLOOR) != wanted:
        # Off the grid, a remainder smaller than a step would stay unfilled forever.
        raise ValueError(f"quantity {wanted} is not a multiple of the step size {step}")
    capacity = bar_capacity(bar_volume, config, already_filled)
    filled = _to_grid(min(wanted, capacity), step, ROUND_FLOOR)
    return filled if filled > 0 else None


def _sim_fill(
    quantity: Decimal, filled: Decimal, price: Decimal, fee_rate: Decimal, liquidity: Liquidity
) -> SimFill:
    notional = _ARITHMETIC.multiply(filled, price)
    return SimFill(
        quantity=filled,
        price=price,
        fee=_ARITHMETIC.multiply(fee_rate, notional),
        remaining=_ARITHMETIC.subtract(quantity, filled),
        liquidity=liquidity,
    )


def _to_grid(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    steps = _ARITHMETIC.divide(value, step).to_integral_value(rounding=rounding)
    return _ARITHMETIC.multiply(steps, step)


_SIDES = {side.value: side for side in Side}


def _side(side: object) -> Side:
    # The enum's own lookup by value, without its call: this runs several times per fill.
    if isinstance(side, str) and (found := _SIDES.get(side)) is not None:
        return found
    try:
        return Side(side)
    except ValueError:
        raise ValueError(f"side must be BUY or SELL, got {side!r}") from None


def _positive(name: str, value: object) -> Decimal:
    number = _decimal(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {number}")
    return number


def _decimal(name: str, value: object) -> Decimal:
    # A float would bring its binary rounding error in; only Decimals are taken.
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{name} must be a finite Decimal, got {value!r}")
    return value
