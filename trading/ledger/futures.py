"""The arithmetic of a USDⓈ-M perpetual futures account: leverage brackets, initial and
maintenance margin, the margin and available balances, the liquidation price, and what an order
needs of the margin.

The account is in Binance's cross margin mode, one-way (one position per symbol, long or short;
Binance's ``BOTH``): every position draws on the one wallet balance, and the account is
liquidated when its margin balance falls below the maintenance margin of all its positions.

- Wallet balance: what was deposited plus every fill's realized PnL less its fee (a futures fill
  moves no base asset: the contract is settled in USDT).
- Unrealized PnL: per position, from its entry cost at the mark (``book.unrealized_pnl``).
- Margin balance: wallet balance plus unrealized PnL.
- Initial margin: a position's notional at the mark divided by its symbol's leverage; an open
  order's margin is its notional at its reference price over the leverage, plus the taker fee.
- Maintenance margin: ``notional x maintMarginRatio - cum`` of the bracket the notional falls in
  (Binance's brackets: ``notionalFloor < notional <= notionalCap``).
- Available balance: margin balance less the positions' initial margin and the open orders'.
- Liquidation price of a position, cross, one-way (Binance's "How to Calculate Liquidation Price
  of USDⓈ-M Futures Contracts"): ``(WB - TMM1 + UPNL1 + cumB - Side1 x Position1 x EP1) /
  (Position1 x MMR_B - Side1 x Position1)``, where TMM1 and UPNL1 are the maintenance margin and
  unrealized PnL of the other positions, and MMR_B and cumB are those of the bracket the
  position's notional at the liquidation price falls in (worked out per bracket until one is
  consistent, as Binance's notes say).

Pure: values in, Decimals out, exact to 50 digits.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal
from pathlib import Path
from types import MappingProxyType

from trading.ledger.book import PositionState, Side, initial_margin, unrealized_pnl

ZERO = Decimal(0)
ONE = Decimal(1)
_ARITHMETIC = Context(prec=50)
BUNDLED_BRACKETS = Path(__file__).with_name("data") / "leverage_brackets.json"


@dataclass(frozen=True, slots=True)
class Bracket:
    """One notional tier of a symbol, as ``GET /fapi/v1/leverageBracket`` reports it."""

    bracket: int
    initial_leverage: int
    notional_floor: Decimal
    notional_cap: Decimal
    maint_margin_ratio: Decimal
    cum: Decimal

    def holds(self, notional: Decimal) -> bool:
        return self.notional_floor < notional <= self.notional_cap or (
            notional == 0 and self.notional_floor == 0
        )

    def maintenance_margin(self, notional: Decimal) -> Decimal:
        return _ARITHMETIC.subtract(
            _ARITHMETIC.multiply(notional, self.maint_margin_ratio), self.cum
        )


@dataclass(frozen=True, slots=True)
class Brackets:
    """A symbol's brackets, lowest notional first."""

    symbol: str
    tiers: tuple[Bracket, ...]

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError(f"{self.symbol} has no leverage brackets")
        object.__setattr__(self, "tiers", tuple(sorted(self.tiers, key=lambda b: b.bracket)))

    @property
    def max_leverage(self) -> int:
        return max(b.initial_leverage for b in self.tiers)

    @property
    def max_notional(self) -> Decimal:
        return self.tiers[-1].notional_cap

    def tier(self, notional: Decimal) -> Bracket | None:
        """The bracket ``notional`` (>= 0) falls in; None beyond the last cap."""
        notional = notional.copy_abs()
        return next((b for b in self.tiers if b.holds(notional)), None)

    def maintenance_margin(self, notional: Decimal) -> Decimal:
        """The maintenance margin of a position of ``notional``; beyond the last cap, at the
        last bracket's rate (a position the brackets refuse to open can still be valued)."""
        notional = notional.copy_abs()
        return (self.tier(notional) or self.tiers[-1]).maintenance_margin(notional)

    def leverage_cap(self, leverage: int) -> Decimal:
        """The largest notional a position may have at ``leverage``: the cap of the last
        bracket whose initial leverage allows it; zero when none does."""
        allowed = [b.notional_cap for b in self.tiers if b.initial_leverage >= leverage]
        return max(allowed, default=ZERO)


def parse_brackets(payload: object) -> dict[str, Brackets]:
    """Brackets per symbol from a ``GET /fapi/v1/leverageBracket`` answer (a list of symbols, or
    one symbol's object). Raises ValueError on a malformed answer."""
    entries = payload if isinstance(payload, list) else [payload]
    result = {}
    try:
        for entry in entries:
            tiers = tuple(
                Bracket(
                    bracket=int(b["bracket"]),
                    initial_leverage=int(b["initialLeverage"]),
                    notional_floor=Decimal(str(b["notionalFloor"])),
                    notional_cap=Decimal(str(b["notionalCap"])),
                    maint_margin_ratio=Decimal(str(b["maintMarginRatio"])),
                    cum=Decimal(str(b["cum"])),
                )
                for b in entry["brackets"]
            )
            result[entry["symbol"]] = Brackets(entry["symbol"], tiers)
    except (KeyError, TypeError, ArithmeticError) as error:
        raise ValueError(f"not a leverageBracket answer: {error!r}") from error
    return result


def brackets_payload(brackets: Brackets) -> dict:
    """``brackets`` written back as one symbol's entry of a leverageBracket answer."""
    return {
        "symbol": brackets.symbol,
        "brackets": [
            {
                "bracket": b.bracket,
                "initialLeverage": b.initial_leverage,
                "notionalFloor": str(b.notional_floor),
                "notionalCap": str(b.notional_cap),
                "maintMarginRatio": str(b.maint_margin_ratio),
                "cum": str(b.cum),
            }
            for b in brackets.tiers
        ],
    }


@functools.cache
def bundled_brackets() -> Mapping[str, Brackets]:
    """The brackets shipped with the platform (``data/leverage_brackets.json``, whose ``source``
    says where each symbol's figures come from)."""
    data = json.loads(BUNDLED_BRACKETS.read_text())
    return MappingProxyType(parse_brackets(data["brackets"]))


def order_margin(quantity: Decimal, price: Decimal, leverage: int, fee_rate: Decimal) -> Decimal:
    """What an order that opens or adds ``quantity`` at ``price`` holds of the margin: its
    initial margin and the taker fee on its notional."""
    notional = _ARITHMETIC.multiply(quantity, price)
    return _ARITHMETIC.add(
        initial_margin(notional, leverage), _ARITHMETIC.multiply(notional, fee_rate)
    )


def opening_quantity(side: Side | str, quantity: Decimal, held: Decimal) -> Decimal:
    """The part of an order of ``quantity`` that opens or adds to a position (``held`` signed):
    all of it in the position's direction or from flat, what is left past zero against it."""
    signed = quantity if Side(side) is Side.BUY else -quantity
    if not held or (held > 0) == (signed > 0):
        return quantity
    return max(ZERO, _ARITHMETIC.subtract(quantity, held.copy_abs()))


def grows_position(side: Side | str, quantity: Decimal, held: Decimal) -> bool:
    """Whether an order would open, add to or flip the position: what a reduce-only order
    must not do."""
    return opening_quantity(side, quantity, held) > 0


@dataclass(frozen=True, slots=True)
class Holding:
    """One open position as the margin arithmetic needs it: its state, the symbol's leverage
    and brackets, and its mark."""

    state: PositionState
    leverage: int
    brackets: Brackets
    mark: Decimal

    @property
    def notional(self) -> Decimal:
        return _ARITHMETIC.multiply(self.state.quantity.copy_abs(), self.mark)

    @property
    def unrealized(self) -> Decimal:
        return unrealized_pnl(self.state, self.mark)

    @property
    def initial_margin(self) -> Decimal:
        return initial_margin(self.notional, self.leverage)

    @property
    def maintenance_margin(self) -> Decimal:
        return self.brackets.maintenance_margin(self.notional)


@dataclass(frozen=True, slots=True)
class MarginState:
    """A futures account at its marks."""

    wallet_balance: Decimal
    unrealized_pnl: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    open_order_margin: Decimal

    @property
    def margin_balance(self) -> Decimal:
        return _ARITHMETIC.add(self.wallet_balance, self.unrealized_pnl)

    @property
    def available_balance(self) -> Decimal:
        used = _ARITHMETIC.add(self.initial_margin, self.open_order_margin)
        return _ARITHMETIC.subtract(self.margin_balance, used)

    @property
    def liquidating(self) -> bool:
        """Binance liquidates when the margin ratio (maintenance margin over margin balance)
        reaches 100%: the margin balance has fallen below the maintenance margin."""
        return self.maintenance_margin > 0 and self.margin_balance < self.maintenance_margin


def margin_state(
    wallet_balance: Decimal, holdings: Iterable[Holding], open_order_margin: Decimal = ZERO
) -> MarginState:
    unrealized = initial = maintenance = ZERO
    for holding in holdings:
        if holding.state.is_flat:
            continue
        unrealized = _ARITHMETIC.add(unrealized, holding.unrealized)
        initial = _ARITHMETIC.add(initial, holding.initial_margin)
        maintenance = _ARITHMETIC.add(maintenance, holding.maintenance_margin)
    return MarginState(wallet_balance, unrealized, initial, maintenance, open_order_margin)


def liquidation_price(
    holding: Holding, wallet_balance: Decimal, others: Iterable[Holding] = ()
) -> Decimal | None:
    """The mark at which the account's margin balance would fall to its maintenance margin with
    only ``holding``'s mark moving (cross margin, one-way; the formula in the module docstring).
    None when there is none: a flat position, or a long whose liquidation price would be at or
    below zero (Binance shows "--")."""
    state = holding.state
    if state.is_flat:
        return None
    others = [o for o in others if not o.state.is_flat]
    tmm = upnl = ZERO
    for other in others:
        tmm = _ARITHMETIC.add(tmm, other.maintenance_margin)
        upnl = _ARITHMETIC.add(upnl, other.unrealized)
    side = ONE if state.quantity > 0 else -ONE
    size = state.quantity.copy_abs()
    assert state.cost_basis is not None  # set by PositionState
    # Side1 x Position1 x EP1, from the entry cost so that it agrees with unrealized_pnl exactly.
    entry = _ARITHMETIC.multiply(side, state.cost_basis)
    free = _ARITHMETIC.subtract(_ARITHMETIC.add(wallet_balance, upnl), tmm)
    candidates = []
    for tier in holding.brackets.tiers:
        numerator = _ARITHMETIC.subtract(_ARITHMETIC.add(free, tier.cum), entry)
        denominator = _ARITHMETIC.subtract(
            _ARITHMETIC.multiply(size, tier.maint_margin_ratio), _ARITHMETIC.multiply(side, size)
        )
        price = _ARITHMETIC.divide(numerator, denominator)
        candidates.append(price)
        if price > 0 and tier.holds(_ARITHMETIC.multiply(size, price)):
            return price
    # Beyond the last cap: the last bracket's rate, as maintenance_margin values it.
    price = candidates[-1]
    return price if price > 0 else None


def liquidation_prices(
    wallet_balance: Decimal, holdings: Iterable[Holding]
) -> dict[str, Decimal | None]:
    """Each open position's liquidation price, the others at their marks."""
    held = [h for h in holdings if not h.state.is_flat]
    return {
        h.state.symbol: liquidation_price(h, wallet_balance, [o for o in held if o is not h])
        for h in held
    }


def margin_shortfall(
    side: Side | str,
    quantity: Decimal,
    price: Decimal,
    *,
    held: Decimal,
    leverage: int,
    fee_rate: Decimal,
    available: Decimal,
) -> str | None:
    """Why the available balance cannot pay the margin of an order, or None when it can: the
    part that opens or adds needs its initial margin, the whole order its taker fee."""
    opening = opening_quantity(side, quantity, held)
    notional = _ARITHMETIC.multiply(quantity, price)
    need = _ARITHMETIC.add(
        initial_margin(_ARITHMETIC.multiply(opening, price), leverage),
        _ARITHMETIC.multiply(notional, fee_rate),
    )
    if need > available:
        return (
            f"{Side(side)} {_plain(quantity)} at {leverage}x needs margin {_plain(need)} USDT "
            f"> available {_plain(available)} USDT"
        )
    return None


def _plain(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), context=_ARITHMETIC).normalize():f}"


def wallet_move(realized_pnl: Decimal, fee: Decimal) -> Decimal:
    """What one fill does to a futures wallet: its realized PnL less its fee (no base asset
    moves; the contract settles in the quote asset)."""
    return _ARITHMETIC.subtract(realized_pnl, fee)
