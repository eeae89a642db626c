"""Binance spot symbol rules (tick size, step size, notional bounds) read from ``exchangeInfo``.

``parse_exchange_info`` turns a ``GET /api/v3/exchangeInfo`` payload into one frozen
``SymbolRules`` per symbol; ``load_bundled_rules`` does the same for the 2023 mainnet snapshot
shipped in ``data/exchangeInfo.json`` (see ``data/SOURCE.md``: a fallback and a fixture, not a
substitute for the live rules).

Conventions, following Binance's ``filters.md``:

- A filter value of zero disables that rule. ``PRICE_FILTER`` documents this; ``MARKET_LOT_SIZE``
  is published with ``stepSize`` and ``minQty`` of ``0`` on the real symbols, which only makes sense
  the same way. A filter missing from the payload is treated as all zeros (no rule), except
  ``max_notional``, which is ``None`` when no ``NOTIONAL`` filter gives one.
- ``LOT_SIZE`` applies to every order; ``MARKET_LOT_SIZE`` applies to MARKET orders on top of it.
- ``NOTIONAL`` (since 2023) replaced ``MIN_NOTIONAL``; for older payloads ``MIN_NOTIONAL``'s
  ``minNotional`` and ``applyToMarket`` are used. When both are present, ``NOTIONAL`` wins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

BUNDLED_EXCHANGE_INFO = Path(__file__).resolve().parent / "data" / "exchangeInfo.json"

TRADING = "TRADING"
ZERO = Decimal(0)


@dataclass(frozen=True)
class SymbolRules:
    """The trading rules of one symbol. All sizes are Decimals; zero means "no such rule"."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step_size: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal | None
    apply_min_to_market: bool
    apply_max_to_market: bool

    @property
    def is_trading(self) -> bool:
        """True when the exchange accepts new orders on the symbol (status ``TRADING``)."""
        return self.status == TRADING

    def round_price(self, price: Decimal) -> Decimal:
        """Return ``price`` rounded toward zero to a multiple of ``tick_size``.

        A zero ``tick_size`` means the exchange sets no tick, and ``price`` is returned unchanged.
        The result can be below the exchange's minimum price; that is for the caller to check.
        """
        return _round_down(price, self.tick_size)

    def round_quantity(self, qty: Decimal, market: bool) -> Decimal:
        """Return ``qty`` rounded toward zero so that it passes the step rules of an order.

        Every order must be a multiple of ``LOT_SIZE``'s ``step_size``; a MARKET order
        (``market=True``) must also be a multiple of ``MARKET_LOT_SIZE``'s ``market_step_size``
        when that is not zero. Rounding never increases the quantity. The result can be below the
        minimum quantity (zero, even); checking min and max is the caller's job (the risk checks do
        it).
        """
        rounded = _round_down(qty, self.step_size)
        if market and self.market_step_size:
            # Binance's steps are powers of ten, so flooring to the coarser step after the finer
            # one lands on a multiple of both.
            rounded = _round_down(rounded, self.market_step_size)
        return rounded


def parse_exchange_info(payload: Mapping[str, Any]) -> dict[str, SymbolRules]:
    """Return the rules of every symbol in an ``exchangeInfo`` payload, keyed by symbol.

    The order of ``payload["symbols"]`` is kept. Raises ``ValueError`` when a symbol entry lacks a
    required field or a filter value is not a number; an unreadable rule must not silently become
    "no rule".
    """
    rules: dict[str, SymbolRules] = {}
    for entry in payload.get("symbols", []):
        parsed = _parse_symbol(entry)
        rules[parsed.symbol] = parsed
    return rules


def load_bundled_rules() -> dict[str, SymbolRules]:
    """Return the rules from the bundled 2023 snapshot (BTCUSDT, ETHUSDT, SOLUSDT).

    The file is read once per process; each call returns a new dict, so callers may change theirs.
    """
    return dict(_bundled_rules())


@cache
def _bundled_rules() -> Mapping[str, SymbolRules]:
    with BUNDLED_EXCHANGE_INFO.open(encoding="utf-8") as fh:
        return parse_exchange_info(json.load(fh))


def _parse_symbol(entry: Mapping[str, Any]) -> SymbolRules:
    try:
        symbol = entry["symbol"]
        status = entry["status"]
        base_asset = entry["baseAsset"]
        quote_asset = entry["quoteAsset"]
    except KeyError as exc:
        raise ValueError(f"exchangeInfo symbol entry without {exc.args[0]!r}: {entry!r}") from exc

    filters = {f["filterType"]: f for f in entry.get("filters", [])}
    price = filters.get("PRICE_FILTER", {})
    lot = filters.get("LOT_SIZE", {})
    market_lot = filters.get("MARKET_LOT_SIZE", {})

    def number(filter_: Mapping[str, Any], key: str) -> Decimal:
        return _decimal(filter_.get(key, 0), f"{symbol} {filter_.get('filterType')}.{key}")

    if "NOTIONAL" in filters:
        notional = filters["NOTIONAL"]
        min_notional = number(notional, "minNotional")
        max_notional: Decimal | None = (
            number(notional, "maxNotional") if "maxNotional" in notional else None
        )
        apply_min_to_market = bool(notional.get("applyMinToMarket", False))
        apply_max_to_market = bool(notional.get("applyMaxToMarket", False))
    elif "MIN_NOTIONAL" in filters:
        legacy = filters["MIN_NOTIONAL"]
        min_notional = number(legacy, "minNotional")
        max_notional = None
        apply_min_to_market = bool(legacy.get("applyToMarket", False))
        apply_max_to_market = False
    else:
        min_notional, max_notional = ZERO, None
        apply_min_to_market = apply_max_to_market = False

    return SymbolRules(
        symbol=symbol,
        status=status,
        base_asset=base_asset,
        quote_asset=quote_asset,
        tick_size=number(price, "tickSize"),
        step_size=number(lot, "stepSize"),
        min_qty=number(lot, "minQty"),
        max_qty=number(lot, "maxQty"),
        market_step_size=number(market_lot, "stepSize"),
        market_min_qty=number(market_lot, "minQty"),
        market_max_qty=number(market_lot, "maxQty"),
        min_notional=min_notional,
        max_notional=max_notional,
        apply_min_to_market=apply_min_to_market,
        apply_max_to_market=apply_max_to_market,
    )


def _decimal(value: Any, where: str) -> Decimal:
    # Binance sends decimal strings; str() keeps a hand-written float's shortest form (0.01 stays
    # 0.01) instead of its binary expansion.
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{where}: expected a number, got {value!r}") from exc
    if not result.is_finite() or result < 0:
        raise ValueError(f"{where}: expected a non-negative number, got {value!r}")
    return result


def _round_down(value: Decimal, step: Decimal) -> Decimal:
    if not step:
        return value
    # Decimal's % is exact and takes the sign of the dividend, so this truncates toward zero.
    return value - value % step
