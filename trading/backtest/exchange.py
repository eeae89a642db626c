"""The paper exchange with its balance book in memory, for a backtest in one process.

The same adapter methods as ``trading.execution.paper_exchange.PaperExchange`` (``place_order``,
``on_bar``, ``open_orders``, ``query_order``, ``cancel_order``, ``balances``) and the same
decisions, from the same pure functions of ``trading.execution.paper``: what placing an order
needs free (``placement_hold``), what a bar fills (``simulate_market_fill``), what the book
pays for and moves (``book_trade``). Only where the book lives differs: dictionaries here, Redis
there. The volume a bar has filled is counted per symbol and bar, as the paper exchange counts
it for every order on the symbol.

A futures account's book (``margin=True``) is the paper exchange's margin book: its margin is
held and checked by the backtest's ledger, so nothing is held here, no order is refused for want
of a balance, and a SELL with no position fills as a short; its totals are its own, moved
spot-style as the live margin book's are, not the futures wallet.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Context, Decimal

from trading.execution.adapter import (
    Balance,
    ExchangeError,
    ExchangeFill,
    OrderRequest,
    OrderResult,
    OrderStatus,
    rules_of,
)
from trading.execution.paper import PaperConfig, book_trade, placement_hold, simulate_market_fill
from trading.marketdata.bars import Bar
from trading.marketdata.symbols import SymbolRules

ZERO = Decimal(0)
INFINITY = Decimal("Infinity")
_EXACT = Context(prec=50)
INSUFFICIENT_BALANCE = -2010
INSUFFICIENT_BALANCE_MESSAGE = "Account has insufficient balance for requested action."


@dataclass
class _Held:
    order: OrderResult
    held: Decimal
    trades: int = 0


class MemoryPaperExchange:
    name = "paper"

    def __init__(
        self,
        config: PaperConfig,
        rules: dict[str, SymbolRules],
        totals: dict[str, Decimal],
        *,
        quote_asset: str = "USDT",
        margin: bool = False,
    ) -> None:
        self.margin = margin
        self.config = config
        self.rules = rules
        # The book's totals per asset; the backtest's ledger reads the same dictionary, as the
        # ledger and the paper exchange agree on totals live.
        self.totals = totals
        self.locked: dict[str, Decimal] = {}
        self.quote_asset = quote_asset
        self.quotes: dict[str, Bar] = {}
        self._orders: dict[str, _Held] = {}
        # The orders still open, by client order id.
        self.open_by_id: dict[str, _Held] = {}
        self._used: dict[str, tuple[object, Decimal]] = {}

    def _rules(self, symbol: str) -> SymbolRules:
        return rules_of(self.rules, symbol)

    def _hold_asset(self, order: OrderResult) -> str:
        rules = self._rules(order.symbol)
        if self.margin:
            return rules.quote_asset
        return rules.base_asset if order.side == "SELL" else rules.quote_asset

    def _free(self, asset: str) -> Decimal:
        return _EXACT.subtract(self.totals.get(asset, ZERO), self.locked.get(asset, ZERO))

    def _used_of(self, bar: Bar) -> Decimal:
        seen = self._used.get(bar.symbol)
        return seen[1] if seen is not None and seen[0] == bar.close_time else ZERO

    # --- the adapter interface ------------------------------------------------------------

    def place_order(self, req: OrderRequest) -> OrderResult:
        rules = self._rules(req.symbol)
        if req.order_type != "MARKET":
            raise ExchangeError(
                "the paper exchange takes MARKET orders", code=-1116, retryable=False
            )
        bar = self.quotes.get(req.symbol)
        if bar is None:
            raise ExchangeError(f"no market data for {req.symbol} yet", retryable=True)
        if req.client_order_id in self._orders:
            raise ExchangeError("Duplicate order sent.", code=-2010, retryable=False)
        asset = rules.base_asset if req.side == "SELL" else rules.quote_asset
        need = placement_hold(
            req.side, req.quantity, bar.close, self.config, tick_size=rules.tick_size
        )
        if self.margin:
            need, asset = ZERO, rules.quote_asset
        elif need > self._free(asset):
            raise ExchangeError(
                INSUFFICIENT_BALANCE_MESSAGE,
                code=INSUFFICIENT_BALANCE,
                retryable=False,
                http_status=400,
            )
        order = OrderResult.accepted(req, f"paper-{req.client_order_id}", bar.close_time)
        entry = _Held(order, need)
        self._orders[req.client_order_id] = entry
        self.open_by_id[req.client_order_id] = entry
        self.locked[asset] = _EXACT.add(self.locked.get(asset, ZERO), need)
        return self._fill_on_bar(entry, bar, rules)

    def on_bar(self, bar: Bar) -> list[OrderResult]:
        self.quotes[bar.symbol] = bar
        if not self.open_by_id:  # market orders mostly fill on the bar they are placed on
            return []
        changed = []
        for entry in [e for e in self.open_by_id.values() if e.order.symbol == bar.symbol]:
            before = entry.order
            updated = self._fill_on_bar(entry, bar)
            if updated.fills or updated.status != before.status:
                changed.append(updated)
        return changed

    def open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        return [e.order for e in self.open_by_id.values() if symbol in (None, e.order.symbol)]

    def query_order(self, symbol: str, client_order_id: str) -> OrderResult:
        entry = self._orders.get(client_order_id)
        if entry is None:
            raise ExchangeError("Order does not exist.", code=-2013, retryable=False)
        return entry.order

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult:
        entry = self.open_by_id.get(client_order_id)
        if entry is None:
            raise ExchangeError("Unknown order sent.", code=-2011, retryable=False)
        return self._end(entry, OrderStatus.CANCELED)

    def balances(self) -> list[Balance]:
        return [
            Balance(asset, self._free(asset), self.locked.get(asset, ZERO))
            for asset in sorted(self.totals)
        ]

    # --- the book -------------------------------------------------------------------------

    def _end(self, entry: _Held, status: OrderStatus) -> OrderResult:
        asset = self._hold_asset(entry.order)
        self.locked[asset] = max(ZERO, _EXACT.subtract(self.locked.get(asset, ZERO), entry.held))
        entry.held = ZERO
        entry.order = replace(entry.order, status=status, fills=())
        self.open_by_id.pop(entry.order.client_order_id, None)
        return entry.order

    def _fill_on_bar(self, entry: _Held, bar: Bar, rules: SymbolRules | None = None) -> OrderResult:
        order = entry.order
        if rules is None:
            rules = self._rules(order.symbol)
        step = rules.market_step_size or rules.step_size
        used = self._used_of(bar)
        sim = simulate_market_fill(
            order.side,
            order.orig_quantity - order.executed_quantity,
            bar.close,
            bar.volume,
            self.config,
            used,
            tick_size=rules.tick_size,
            step_size=step,
        )
        if sim is None or sim.quantity <= 0:
            if order.fills:  # an answer reports the trades of its own call only
                entry.order = replace(order, fills=())
            return entry.order
        trade = book_trade(
            order.side,
            sim.quantity,
            sim.price,
            self.config,
            held=entry.held,
            # A futures fill is paid for by the margin the ledger holds, not the book's cash.
            free_quote=INFINITY if self.margin else self._free(rules.quote_asset),
            step_size=step,
        )
        if trade is None:
            return self._end(entry, OrderStatus.EXPIRED)
        executed = order.executed_quantity + trade.quantity
        notional = _EXACT.multiply(trade.quantity, trade.price)
        entry.trades += 1
        done = executed >= order.orig_quantity
        # Built whole rather than through ``dataclasses.replace``: this runs for every fill.
        updated = OrderResult(
            client_order_id=order.client_order_id,
            exchange_order_id=order.exchange_order_id,
            symbol=order.symbol,
            side=order.side,
            status=OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
            orig_quantity=order.orig_quantity,
            executed_quantity=executed,
            cumulative_quote=order.cumulative_quote + notional,
            fills=(
                ExchangeFill(
                    price=trade.price,
                    quantity=trade.quantity,
                    commission=trade.fee,
                    commission_asset=self.quote_asset,
                    trade_id=f"{order.exchange_order_id}-{entry.trades}",
                ),
            ),
            transact_time=bar.close_time,
            fills_error=order.fills_error,
        )
        self._used[bar.symbol] = (bar.close_time, _EXACT.add(used, trade.quantity))
        totals = self.totals
        base, quote = rules.base_asset, rules.quote_asset
        totals[base] = _EXACT.add(totals.get(base, ZERO), trade.base_move)
        totals[quote] = _EXACT.add(totals.get(quote, ZERO), trade.quote_move)
        # What the order holds is in the quote asset on a margin book or for a BUY, else in
        # the base (``_hold_asset``); a filled order holds nothing any more.
        hold_asset = quote if self.margin or order.side != "SELL" else base
        released = entry.held if done else min(entry.held, trade.spent)
        entry.held = _EXACT.subtract(entry.held, released)
        self.locked[hold_asset] = max(
            ZERO, _EXACT.subtract(self.locked.get(hold_asset, ZERO), released)
        )
        entry.order = updated
        if done:
            self.open_by_id.pop(order.client_order_id, None)
        return updated
