"""Pre-trade risk checks: pure functions from an order, the limits and the book to a decision.

``evaluate`` runs the checks in this order and returns the first denial:

1. trading state: HALTED denies everything (TRADING_HALTED); REDUCING denies any order that is not
   reduce-only (REDUCE_ONLY); a daily loss at the limit denies everything (DAILY_LOSS_LIMIT), as the
   HALTED state it leads to will, so the outcome does not depend on whether that state change has
   been persisted yet;
2. symbol: in the allowed symbols (SYMBOL_NOT_ALLOWED), then known to the exchange and TRADING
   (SYMBOL_NOT_TRADING);
3. signal confidence (LOW_CONFIDENCE);
4. leverage: outside 1 to the maximum (MAX_LEVERAGE), then anything but 1 on a spot account
   (LEVERAGE_NOT_SUPPORTED); on a futures account, beyond what the symbol's leverage brackets
   allow for the resulting position's notional (MAX_LEVERAGE); an order marked reduce-only
   that would open or grow a position (REDUCE_ONLY);
5. the exchange's rules: MIN_NOTIONAL / MAX_NOTIONAL, then LOT_SIZE, MARKET_LOT_SIZE (a value
   too small to trade is told as such, not as a quantity off the step it was rounded to);
6. balances, on a spot account: a SELL needs its quantity free in the base asset, a BUY its cost
   plus the taker fee free in the quote asset (INSUFFICIENT_BALANCE); on a futures account the
   available balance must pay the initial margin of what the order opens and its taker fee
   (INSUFFICIENT_MARGIN); a SELL with no position opens a short;
7. exposure: the symbol's resulting position (MAX_POSITION_NOTIONAL), the total exposure
   (MAX_TOTAL_EXPOSURE), the number of open positions (MAX_OPEN_POSITIONS). An order that is
   reduce-only is never denied here: refusing to shrink a position that is over a limit would
   keep the book over it;
8. order rate (ORDER_RATE).

Conventions:

- A reduce-only order is on the opposite side of an existing position and no larger than it: it
  shrinks ``|position|`` without flipping it. Closing a position exactly is reduce-only; a SELL
  larger than a long position is not (it opens a short).
- Limits are caps: a value exactly at the limit passes (a position notional of 1000.00 under a
  limit of 1000.00 is allowed). The daily loss limit is a stop trigger and trips when reached; see
  ``trading.risk.state``.
- Positions are signed quantities (long > 0, short < 0); exposure is ``|quantity| * price``. The
  order's own symbol is valued at the order's reference price, every other at its mark.
- Money, quantities and confidence are Decimals; a float is refused with ``TypeError`` rather than
  carried into comparisons against tick and step sizes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from trading.ledger.book import AccountKind, spot_shortfall
from trading.ledger.futures import Brackets, margin_shortfall
from trading.marketdata.symbols import SymbolRules
from trading.risk.reasons import Reason
from trading.risk.state import TradingState

ZERO = Decimal(0)
ONE = Decimal(1)


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


@dataclass(frozen=True, kw_only=True)
class Limits:
    """The operator's risk limits. Amounts are in the quote currency (USDT).

    ``max_drawdown`` is a fraction of peak equity; it is not used by ``evaluate`` but by
    ``trading.risk.state.automatic_state``, which puts the book in REDUCING. ``allowed_symbols``
    may be any iterable of symbols and is stored as a frozenset; an empty one allows nothing.
    A cap of zero (position notional, total exposure, open positions, orders per minute) is valid
    and allows nothing that adds to it. Raises ``ValueError`` for a limit that makes no sense: a
    negative cap or count, a daily loss limit that is not positive or a drawdown outside (0, 1]
    (either would trip at once and for good), a confidence outside [0, 1], a leverage below 1.
    """

    max_position_notional: Decimal
    max_total_exposure: Decimal
    max_leverage: int
    max_open_positions: int
    daily_loss_limit: Decimal
    max_drawdown: Decimal
    max_orders_per_minute: int
    allowed_symbols: frozenset[str]
    min_confidence: Decimal = Decimal("0.7")

    def __post_init__(self) -> None:
        for name in ("max_position_notional", "max_total_exposure"):
            if _decimal_field(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if _decimal_field(self, "daily_loss_limit") <= 0:
            raise ValueError(f"daily_loss_limit must be positive, got {self.daily_loss_limit}")
        if not 0 < _decimal_field(self, "max_drawdown") <= 1:
            raise ValueError(f"max_drawdown must be a fraction in (0, 1], got {self.max_drawdown}")
        if not 0 <= _decimal_field(self, "min_confidence") <= 1:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if _int_field(self, "max_leverage") < 1:
            raise ValueError(f"max_leverage must be at least 1, got {self.max_leverage}")
        for name in ("max_open_positions", "max_orders_per_minute"):
            if _int_field(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        symbols: Iterable[str] = self.allowed_symbols
        if isinstance(symbols, str):
            raise TypeError("allowed_symbols must be a collection of symbols, not one string")
        object.__setattr__(self, "allowed_symbols", frozenset(symbols))


@dataclass(frozen=True, kw_only=True)
class OrderIntent:
    """An order the platform wants to place, before risk.

    ``price`` is the reference price used to value the order (the last mark for a market order,
    the limit price for a limit order). ``confidence`` is the signal's, in [0, 1]; an order that
    does not come from a model (an operator closing a position) should carry 1. ``market`` says
    whether it will be sent as a MARKET order, which decides the exchange rules that apply.
    Raises ``ValueError`` for a non-positive quantity or price or a confidence outside [0, 1].
    """

    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    confidence: Decimal
    leverage: int = 1
    market: bool = True
    reduce_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", _side(self.side))
        for name in ("quantity", "price"):
            if _decimal_field(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= _decimal_field(self, "confidence") <= 1:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")
        _int_field(self, "leverage")

    @property
    def signed_quantity(self) -> Decimal:
        """The quantity with the side's sign: positive for BUY, negative for SELL."""
        return self.quantity if self.side == Side.BUY else -self.quantity

    @property
    def notional(self) -> Decimal:
        """The order's value at its reference price."""
        return self.quantity * self.price


@dataclass(frozen=True, kw_only=True)
class BookState:
    """What the risk checks need to know about the book right now.

    ``positions`` maps symbol to signed quantity; ``marks`` maps symbol to the latest price and must
    price every non-zero position (``ValueError`` otherwise: exposure cannot be valued without it).
    ``balances`` maps asset to its free balance (an asset missing holds nothing); ``fee_rate`` is
    the taker fee a BUY must be able to pay beside its notional.
    ``orders_last_minute`` counts orders sent in the last 60 seconds, not counting this one. Both
    mappings are copied, so later changes by the caller do not reach the checks.
    """

    trading_state: TradingState
    kind: AccountKind = AccountKind.SPOT
    positions: Mapping[str, Decimal] = field(default_factory=dict)
    balances: Mapping[str, Decimal] = field(default_factory=dict)
    fee_rate: Decimal = ZERO
    marks: Mapping[str, Decimal] = field(default_factory=dict)
    daily_pnl: Decimal = ZERO
    orders_last_minute: int = 0
    # Futures: the available balance (margin balance less the margin in use) and the leverage
    # brackets per symbol.
    available_balance: Decimal = ZERO
    brackets: Mapping[str, Brackets] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if type(self.trading_state) is not TradingState:
            object.__setattr__(self, "trading_state", TradingState(self.trading_state))
        if type(self.kind) is not AccountKind:
            object.__setattr__(self, "kind", AccountKind(self.kind))
        balances = _decimals("balances", self.balances)
        object.__setattr__(self, "balances", MappingProxyType(balances))
        if _decimal_field(self, "fee_rate") < 0:
            raise ValueError(f"fee_rate must not be negative, got {self.fee_rate}")
        positions = _decimals("positions", self.positions)
        marks = _decimals("marks", self.marks)
        for symbol, quantity in positions.items():
            if quantity and symbol not in marks:
                unpriced = sorted(s for s, q in positions.items() if q and s not in marks)
                raise ValueError(f"no mark for open positions: {', '.join(unpriced)}")
        for price in marks.values():
            if price <= 0:
                raise ValueError(f"marks must be positive: {marks}")
        object.__setattr__(self, "positions", MappingProxyType(positions))
        object.__setattr__(self, "marks", MappingProxyType(marks))
        _decimal_field(self, "daily_pnl")
        if _int_field(self, "orders_last_minute") < 0:
            raise ValueError(f"orders_last_minute must not be negative: {self.orders_last_minute}")

    def position(self, symbol: str) -> Decimal:
        """The signed quantity held in ``symbol``; zero when there is none."""
        return self.positions.get(symbol, ZERO)

    def open_positions(self) -> int:
        """How many symbols have a non-zero position."""
        return sum(1 for q in self.positions.values() if q)


@dataclass(frozen=True)
class Denial:
    """Why one check refused an order: a reason code and the numbers behind it."""

    reason: Reason
    detail: str


@dataclass(frozen=True)
class Decision:
    """What ``evaluate`` decided: approved with no reason, or denied with a reason and detail."""

    approved: bool
    reason: Reason | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.approved == (self.reason is not None):
            raise ValueError("a decision is either approved or denied with a reason")

    @classmethod
    def approve(cls) -> Decision:
        return _APPROVED

    @classmethod
    def deny(cls, denial: Denial) -> Decision:
        return cls(approved=False, reason=denial.reason, detail=denial.detail)


# Frozen, so the one approval is shared.
_APPROVED = Decision(approved=True)


def evaluate(
    intent: OrderIntent,
    limits: Limits,
    book: BookState,
    rules: Mapping[str, SymbolRules],
) -> Decision:
    """Return the first denial of the checks, in the order in the module docstring, or approval.

    ``rules`` are the exchange's symbol rules keyed by symbol (``load_bundled_rules()`` or the live
    ones); a symbol missing from them is denied as SYMBOL_NOT_TRADING.
    """
    denial = _first_denial(intent, limits, book, rules)
    return _APPROVED if denial is None else Decision.deny(denial)


def _first_denial(
    intent: OrderIntent,
    limits: Limits,
    book: BookState,
    rules: Mapping[str, SymbolRules],
) -> Denial | None:
    # Each check in turn, so the checks after the first denial never run.
    denial = (
        check_trading_state(intent, book)
        or check_daily_loss(limits, book)
        or check_symbol_allowed(intent, limits)
    )
    if denial is not None:
        return denial
    symbol_rules = rules.get(intent.symbol)
    denial = check_symbol_trading(intent, symbol_rules)
    if denial is not None or symbol_rules is None:
        return denial
    return (
        check_confidence(intent, limits)
        or check_leverage(intent, limits)
        or check_spot_leverage(intent, book)
        or check_futures_leverage(intent, book)
        or check_reduce_only(intent, book)
        or check_notional(intent, symbol_rules)
        or check_lot_size(intent, symbol_rules)
        or check_market_lot_size(intent, symbol_rules)
        or check_balance(intent, book, symbol_rules)
        or check_margin(intent, book)
        or check_position_notional(intent, limits, book)
        or check_total_exposure(intent, limits, book)
        or check_open_positions(intent, limits, book)
        or check_order_rate(limits, book)
    )


def is_reduce_only(intent: OrderIntent, book: BookState) -> bool:
    """True when the order shrinks the symbol's position without flipping it."""
    position = book.position(intent.symbol)
    if not position:
        return False
    opposite = (position > 0) != (intent.side == Side.BUY)
    return opposite and intent.quantity <= abs(position)


# -- state --------------------------------------------------------------------------------------


def check_trading_state(intent: OrderIntent, book: BookState) -> Denial | None:
    """Deny everything when HALTED, and anything not reduce-only when REDUCING."""
    if book.trading_state == TradingState.HALTED:
        return Denial(Reason.TRADING_HALTED, "trading state is HALTED")
    if book.trading_state == TradingState.REDUCING and not is_reduce_only(intent, book):
        before = book.position(intent.symbol)
        after = before + intent.signed_quantity
        return Denial(
            Reason.REDUCE_ONLY,
            f"trading state is REDUCING and {intent.side} {_qty(intent.quantity)} would take the "
            f"{intent.symbol} position from {_qty(before)} to {_qty(after)}",
        )
    return None


def check_daily_loss(limits: Limits, book: BookState) -> Denial | None:
    """Deny everything once today's loss has reached the daily loss limit."""
    loss = -book.daily_pnl
    if loss >= limits.daily_loss_limit:
        return Denial(
            Reason.DAILY_LOSS_LIMIT,
            f"daily loss {_money(loss)} >= limit {_money(limits.daily_loss_limit)}",
        )
    return None


# -- symbol -------------------------------------------------------------------------------------


def check_symbol_allowed(intent: OrderIntent, limits: Limits) -> Denial | None:
    """Deny symbols that are not in the operator's allowed symbols."""
    if intent.symbol not in limits.allowed_symbols:
        allowed = ", ".join(sorted(limits.allowed_symbols)) or "none"
        return Denial(
            Reason.SYMBOL_NOT_ALLOWED, f"{intent.symbol} is not allowed (allowed: {allowed})"
        )
    return None


def check_symbol_trading(intent: OrderIntent, rules: SymbolRules | None) -> Denial | None:
    """Deny symbols the exchange does not know (``rules`` is None) or is not trading."""
    if rules is None:
        return Denial(Reason.SYMBOL_NOT_TRADING, f"no exchange rules for {intent.symbol}")
    if not rules.is_trading:
        return Denial(Reason.SYMBOL_NOT_TRADING, f"{intent.symbol} status is {rules.status}")
    return None


# -- signal -------------------------------------------------------------------------------------


def check_confidence(intent: OrderIntent, limits: Limits) -> Denial | None:
    """Deny orders whose signal confidence is below the minimum (equal passes)."""
    if intent.confidence < limits.min_confidence:
        return Denial(
            Reason.LOW_CONFIDENCE,
            f"confidence {intent.confidence} < minimum {limits.min_confidence}",
        )
    return None


def check_leverage(intent: OrderIntent, limits: Limits) -> Denial | None:
    """Deny a leverage outside 1 to ``max_leverage`` inclusive."""
    if not 1 <= intent.leverage <= limits.max_leverage:
        return Denial(
            Reason.MAX_LEVERAGE,
            f"leverage {intent.leverage} outside 1..{limits.max_leverage}",
        )
    return None


def check_spot_leverage(intent: OrderIntent, book: BookState) -> Denial | None:
    """Deny any leverage but 1 on a spot account: spot trades what the account holds."""
    if book.kind is AccountKind.SPOT and intent.leverage != 1:
        return Denial(
            Reason.LEVERAGE_NOT_SUPPORTED,
            f"leverage {intent.leverage} on a spot account, which trades at 1",
        )
    return None


# -- exchange rules -----------------------------------------------------------------------------


def check_lot_size(intent: OrderIntent, rules: SymbolRules) -> Denial | None:
    """Deny a quantity outside LOT_SIZE's min/max or not a multiple of its step (zero: no rule)."""
    return _lot_denial(
        Reason.LOT_SIZE, intent.quantity, rules.min_qty, rules.max_qty, rules.step_size
    )


def check_market_lot_size(intent: OrderIntent, rules: SymbolRules) -> Denial | None:
    """For a MARKET order, the same as ``check_lot_size`` with MARKET_LOT_SIZE's values."""
    if not intent.market:
        return None
    return _lot_denial(
        Reason.MARKET_LOT_SIZE,
        intent.quantity,
        rules.market_min_qty,
        rules.market_max_qty,
        rules.market_step_size,
    )


def check_notional(intent: OrderIntent, rules: SymbolRules) -> Denial | None:
    """Deny an order value below ``min_notional`` or above ``max_notional``.

    For a MARKET order each bound applies only when the exchange applies it to market orders
    (``apply_min_to_market``, ``apply_max_to_market``). The exchange values a market order at its
    average price over the last few minutes; the reference price stands in for it here, so an
    order right at a bound may still be refused by the exchange.
    """
    notional = intent.notional
    if (not intent.market or rules.apply_min_to_market) and notional < rules.min_notional:
        return Denial(
            Reason.MIN_NOTIONAL,
            f"notional {_money(notional)} < exchange minimum {_money(rules.min_notional)}",
        )
    maximum = rules.max_notional
    if maximum and (not intent.market or rules.apply_max_to_market) and notional > maximum:
        return Denial(
            Reason.MAX_NOTIONAL,
            f"notional {_money(notional)} > exchange maximum {_money(maximum)}",
        )
    return None


def check_futures_leverage(intent: OrderIntent, book: BookState) -> Denial | None:
    """On a futures account, deny a leverage the symbol's brackets do not allow for the
    resulting position's notional (Binance: the higher the leverage, the smaller the position)."""
    if book.kind is not AccountKind.FUTURES:
        return None
    brackets = book.brackets.get(intent.symbol)
    if brackets is None:
        return Denial(Reason.MAX_LEVERAGE, f"no leverage brackets for {intent.symbol}")
    if intent.leverage > brackets.max_leverage:
        return Denial(
            Reason.MAX_LEVERAGE,
            f"leverage {intent.leverage} > {intent.symbol}'s maximum {brackets.max_leverage}",
        )
    notional = abs(_resulting_position(intent, book)) * intent.price
    cap = brackets.leverage_cap(intent.leverage)
    if notional > cap and not is_reduce_only(intent, book):
        return Denial(
            Reason.MAX_LEVERAGE,
            f"a {intent.symbol} position of {_money(notional)} at {intent.leverage}x exceeds the "
            f"bracket cap {_money(cap)}",
        )
    return None


def check_reduce_only(intent: OrderIntent, book: BookState) -> Denial | None:
    """Deny an order marked reduce-only that would open, grow or flip a position."""
    if intent.reduce_only and not is_reduce_only(intent, book):
        before = book.position(intent.symbol)
        return Denial(
            Reason.REDUCE_ONLY,
            f"reduce-only {intent.side} {_qty(intent.quantity)} would take the {intent.symbol} "
            f"position from {_qty(before)} to {_qty(before + intent.signed_quantity)}",
        )
    return None


# -- balances -----------------------------------------------------------------------------------


def check_margin(intent: OrderIntent, book: BookState) -> Denial | None:
    """On a futures account, deny an order whose initial margin (of what it opens) and taker
    fee exceed the available balance."""
    if book.kind is not AccountKind.FUTURES:
        return None
    shortfall = margin_shortfall(
        intent.side,
        intent.quantity,
        intent.price,
        held=book.position(intent.symbol),
        leverage=intent.leverage,
        fee_rate=book.fee_rate,
        available=book.available_balance,
    )
    if shortfall is not None:
        return Denial(Reason.INSUFFICIENT_MARGIN, shortfall)
    return None


def check_balance(intent: OrderIntent, book: BookState, rules: SymbolRules) -> Denial | None:
    """On a spot account, deny a SELL beyond the free base balance or a BUY whose cost plus fee
    exceeds the free quote balance, as Binance spot refuses them."""
    if book.kind is not AccountKind.SPOT:
        return None
    shortfall = spot_shortfall(
        intent.side,
        intent.quantity,
        intent.price,
        book.fee_rate,
        book.balances,
        base=rules.base_asset,
        quote=rules.quote_asset,
    )
    if shortfall is not None:
        return Denial(Reason.INSUFFICIENT_BALANCE, shortfall)
    return None


# -- exposure -----------------------------------------------------------------------------------


def check_position_notional(intent: OrderIntent, limits: Limits, book: BookState) -> Denial | None:
    """Deny when ``|position + order| * price`` would exceed the per-symbol limit.

    Never denies a reduce-only order.
    """
    if is_reduce_only(intent, book):
        return None
    notional = abs(_resulting_position(intent, book)) * intent.price
    if notional > limits.max_position_notional:
        return Denial(
            Reason.MAX_POSITION_NOTIONAL,
            f"{intent.symbol} position notional {_money(notional)} > limit "
            f"{_money(limits.max_position_notional)}",
        )
    return None


def check_total_exposure(intent: OrderIntent, limits: Limits, book: BookState) -> Denial | None:
    """Deny when the sum of ``|position| * price`` after the order would exceed the limit.

    Never denies a reduce-only order.
    """
    if is_reduce_only(intent, book):
        return None
    exposure = abs(_resulting_position(intent, book)) * intent.price
    exposure += sum(
        (abs(q) * book.marks[s] for s, q in book.positions.items() if q and s != intent.symbol),
        ZERO,
    )
    if exposure > limits.max_total_exposure:
        return Denial(
            Reason.MAX_TOTAL_EXPOSURE,
            f"total exposure {_money(exposure)} > limit {_money(limits.max_total_exposure)}",
        )
    return None


def check_open_positions(intent: OrderIntent, limits: Limits, book: BookState) -> Denial | None:
    """Deny an order that opens a position in a new symbol beyond ``max_open_positions``.

    Adding to, reducing or flipping an existing position never changes the count, so it is never
    denied here, even when the book is already over the limit.
    """
    if book.position(intent.symbol):
        return None
    count = book.open_positions() + 1
    if count > limits.max_open_positions:
        return Denial(
            Reason.MAX_OPEN_POSITIONS,
            f"opening {intent.symbol} makes {count} open positions > limit "
            f"{limits.max_open_positions}",
        )
    return None


# -- rate ---------------------------------------------------------------------------------------


def check_order_rate(limits: Limits, book: BookState) -> Denial | None:
    """Deny an order that would make more than ``max_orders_per_minute`` in the last minute."""
    count = book.orders_last_minute + 1
    if count > limits.max_orders_per_minute:
        return Denial(
            Reason.ORDER_RATE,
            f"{count} orders in a minute > limit {limits.max_orders_per_minute}",
        )
    return None


# -- helpers ------------------------------------------------------------------------------------


def _resulting_position(intent: OrderIntent, book: BookState) -> Decimal:
    return book.position(intent.symbol) + intent.signed_quantity


def _lot_denial(
    reason: Reason, qty: Decimal, min_qty: Decimal, max_qty: Decimal, step: Decimal
) -> Denial | None:
    if qty < min_qty:
        return Denial(reason, f"quantity {_qty(qty)} < minimum {_qty(min_qty)}")
    if max_qty and qty > max_qty:
        return Denial(reason, f"quantity {_qty(qty)} > maximum {_qty(max_qty)}")
    if step and qty % step:
        return Denial(reason, f"quantity {_qty(qty)} is not a multiple of step {_qty(step)}")
    return None


def _money(value: Decimal) -> str:
    """Two decimals like a statement, but never rounding away a difference: 9.004 stays 9.004."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return f"{value:.2f}"
    return f"{normalized:f}"


def _qty(value: Decimal) -> str:
    """A quantity without trailing zeros or an exponent: 0.00001000 -> 0.00001."""
    return f"{value.normalize():f}"


_SIDES = {side.value: side for side in Side}


def _side(value: object) -> Side:
    # The enum's own lookup by value, without its call: this runs for every order.
    if isinstance(value, str) and (found := _SIDES.get(value)) is not None:
        return found
    return Side(value)


def _decimal(name: str, value: object) -> Decimal:
    # ints are exact and welcome; floats are not (0.1 is not 0.1), nor bools posing as ints.
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{name} must be a Decimal, got {type(value).__name__} {value!r}")
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {value}")
    return result


def _decimals(label: str, values: Mapping[str, object]) -> dict[str, Decimal]:
    """A copy of ``values`` checked as ``_decimal`` checks each; the name of a bad value is
    only spelled out when there is one, as this runs for every order."""
    checked: dict[str, Decimal] = {}
    for key, value in values.items():
        if type(value) is Decimal and value.is_finite():
            checked[key] = value
        else:
            checked[key] = _decimal(f"{label}[{key!r}]", value)
    return checked


def _decimal_field(obj: object, name: str) -> Decimal:
    value = getattr(obj, name)
    if type(value) is Decimal and value.is_finite():  # already what it would be made
        return value
    value = _decimal(name, value)
    object.__setattr__(obj, name, value)
    return value


def _int_field(obj: object, name: str) -> int:
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return value
