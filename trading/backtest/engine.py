"""The backtest: a strategy's signals through live paper trading's own decisions, in one process.

Each step of closed bars (every symbol's bar closing at one moment), in the order exec-risk and
the ai service meet them live:

1. the bar is the symbol's quote; open orders fill further on it (the paper exchange's
   ``on_bar``), and stop-loss / take-profit levels fire (``ledger.book.exit_trigger``);
2. the strategy sees the symbol's closed bars up to this one (its ``warmup`` of them) and
   returns signals (a strategy with ``on_series`` works them out for a chunk of steps at once,
   the same signals as ``on_bar`` on each window);
3. each signal is sized (``execution.decisions``), checked (``risk.checks.evaluate``, on a
   ``BookState`` of the backtest's book), held against the ledger's free balance, placed on the
   paper exchange (``MemoryPaperExchange``: ``execution.paper``'s fill model) and filled on the
   bar; each fill is booked as live books it (``ledger.book.fill_from_trade``, ``apply_fill``),
   then the automatic trading state (``risk.state.automatic_state``) is applied.

Time is the bars' own: an order's minute for the order rate, the UTC day of the daily PnL and
the fills' times are the closing time of the bar. Nothing here reads a clock, a database or
Redis; the account kind passes through to the risk checks and the book.

A futures account (``Settings.kind``) runs through the ledger's futures arithmetic
(``trading.ledger.futures``), as exec-risk does live: each signal's order holds its initial
margin and taker fee, checked against the available balance; the wallet moves by each fill's
realized PnL less its fee; a SELL with no position opens a short; equity is the margin balance;
and after each step's bars, an account whose margin balance has fallen below its maintenance
margin has every position closed at its mark with the taker fee (purpose ``liquidation``).

Memory: the windows the strategy sees (and a chunk of steps ahead), the open orders, the fills
and an equity curve sampled once per ``sample_every`` (an hour by default) are kept; bars are
read as they come.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from decimal import Context, Decimal

from trading.backtest.exchange import MemoryPaperExchange
from trading.execution.adapter import (
    ExchangeError,
    OrderRequest,
    OrderResult,
    client_order_id_for,
)
from trading.execution.decisions import order_quantity, sizing_denial
from trading.execution.paper import PaperConfig
from trading.ledger.book import (
    AccountKind,
    PositionState,
    Valuation,
    apply_fill,
    cash_flow,
    daily_pnl,
    exit_trigger,
    fill_from_trade,
    open_value,
    order_hold,
    unrealized_at_open,
    value_account,
)
from trading.ledger.book import (
    equity as account_equity,
)
from trading.ledger.futures import (
    Brackets,
    Holding,
    MarginState,
    bundled_brackets,
    grows_position,
    margin_state,
    wallet_move,
)
from trading.marketdata.bars import Bar
from trading.marketdata.symbols import SymbolRules
from trading.risk.checks import BookState, Limits, OrderIntent, evaluate
from trading.risk.reasons import Reason
from trading.risk.state import TradingState, automatic_state
from trading.strategies.base import SignalIntent, Strategy

ZERO = Decimal(0)
_EXACT = Context(prec=50)
Progress = Callable[[int], None]
# Steps whose signals a strategy's ``on_series`` works out at once: long enough that a model
# predicts a batch of rows, short enough that what is held does not grow with the run.
SERIES_CHUNK_STEPS = 1024
_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Settings:
    """One run's settings. ``fee_rate`` defaults to the paper config's taker fee, which is what
    live risk checks a BUY's cost with; ``trade_from`` (None: from the first bar) is when
    signals start to count: the bars before it only fill the strategy's window."""

    paper: PaperConfig
    limits: Limits
    rules: Mapping[str, SymbolRules]
    starting_cash: Decimal
    kind: AccountKind = AccountKind.SPOT
    # Futures: the leverage of every symbol, and the brackets (None: the bundled ones).
    leverage: int = 1
    brackets: Mapping[str, Brackets] | None = None
    quote_asset: str = "USDT"
    trade_from: datetime | None = None
    sample_every: timedelta = timedelta(hours=1)
    hit_horizon: int = 12
    # A book that is not empty at the start (the parity check's window of a live account): the
    # assets' totals (instead of ``starting_cash`` of the quote) and the open positions.
    opening_balances: Mapping[str, Decimal] | None = None
    opening_positions: Mapping[str, PositionState] = field(default_factory=dict)


@dataclass(frozen=True)
class OrderRecord:
    signal_index: int
    ts: datetime
    symbol: str
    side: str
    quantity: Decimal
    reference_price: Decimal
    purpose: str
    status: str = "NEW"
    reason: str = ""


@dataclass(frozen=True)
class FillRecord:
    order_index: int
    ts: datetime
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True)
class SignalRecord:
    ts: datetime
    symbol: str
    side: str
    confidence: Decimal
    status: str
    reason: str = ""


@dataclass
class Trade:
    """A round trip: from the fill that opened a position to the one that closed it."""

    symbol: str
    opened_at: datetime
    closed_at: datetime | None = None
    net_pnl: Decimal = ZERO
    _net_before: Decimal = ZERO


@dataclass
class Result:
    settings: Settings
    strategy_kind: str
    strategy_version: str
    signals: list[SignalRecord] = field(default_factory=list)
    orders: list[OrderRecord] = field(default_factory=list)
    fills: list[FillRecord] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    equity_curve: list[tuple[datetime, Decimal]] = field(default_factory=list)
    bars: int = 0
    steps: int = 0
    steps_in_market: int = 0
    first_close: dict[str, Decimal] = field(default_factory=dict)
    last_close: dict[str, Decimal] = field(default_factory=dict)
    start: datetime | None = None
    end: datetime | None = None
    max_drawdown: Decimal = ZERO
    final_equity: Decimal = ZERO
    hits: int = 0
    scored: int = 0
    liquidations: int = 0


def steps_of(series: Iterable[Iterable[Bar]]) -> Iterator[list[Bar]]:
    """The bars of several symbols merged into steps (the bars closing at one moment), in time
    order and by symbol within a step, each symbol's series read as it goes."""
    # Each series' next bar is held; a step takes every series' bars at the earliest closing
    # time. Symbols' bars mostly line up, so this is a few comparisons a step where a merge
    # would sift a heap for every bar.
    heads: list[tuple[Bar, Iterator[Bar]]] = []
    for bars in series:
        iterator = iter(bars)
        first = next(iterator, None)
        if first is not None:
            heads.append((first, iterator))
    while heads:
        now = min([bar.close_time for bar, _ in heads])
        step: list[Bar] = []
        rest: list[tuple[Bar, Iterator[Bar]]] = []
        # Series given in symbol order (as the runs give them) make steps that need no sort.
        ordered, last = True, ""
        for bar, iterator in heads:
            head: Bar | None = bar
            while head is not None and head.close_time == now:
                if head.symbol < last:
                    ordered = False
                last = head.symbol
                step.append(head)
                head = next(iterator, None)
            if head is not None:
                rest.append((head, iterator))
        heads = rest
        if not ordered:
            step.sort(key=_symbol_of)  # stable: a symbol's bars keep their order
        yield step


def _symbol_of(bar: Bar) -> str:
    return bar.symbol


class Backtest:
    def __init__(self, strategy: Strategy, settings: Settings) -> None:
        self.strategy = strategy
        self.settings = settings
        self.quote = settings.quote_asset
        self.totals: dict[str, Decimal] = (
            dict(settings.opening_balances)
            if settings.opening_balances is not None
            else {self.quote: settings.starting_cash}
        )
        self.futures = settings.kind == AccountKind.FUTURES
        self.brackets = settings.brackets if settings.brackets is not None else bundled_brackets()
        # A futures book on the exchange is its own: the wallet is the ledger's.
        self.exchange = MemoryPaperExchange(
            settings.paper,
            dict(settings.rules),
            dict(self.totals) if self.futures else self.totals,
            quote_asset=self.quote,
            margin=self.futures,
        )
        # What open orders hold on the ledger's side (``ledger.services.order_lock``).
        self.ledger_locked: dict[str, Decimal] = {}
        self._order_holds: dict[str, tuple[int, str, Decimal]] = {}
        self._reducing: set[int] = set()  # futures orders (by index) that open nothing
        self.positions: dict[str, PositionState] = dict(settings.opening_positions)
        # The positions that are not flat, kept as fills book them: read each step.
        self._open_positions = [p for p in self.positions.values() if not p.is_flat]
        self._marked = False  # whether every open position has a mark
        self.stops: dict[str, tuple[Decimal | None, Decimal | None]] = {}
        self.marks: dict[str, Decimal] = {}
        self.windows: dict[str, deque[Bar]] = {}
        self.state = TradingState.ACTIVE
        self.peak_equity = settings.starting_cash
        self._recent_orders: deque[datetime] = deque()
        # What the risk checks last saw, and a count of the book's changes since (``_book_state``).
        self._book_version = 0
        self._book_cache: tuple[tuple[datetime, int], BookState] | None = None
        # Daily PnL as the ledger works it out: the day's realized PnL, and the unrealized PnL
        # at its open from what the fills before it add up to.
        self._day: object = None
        self._next_day: datetime | None = None
        self._series = False  # the strategy's signals are worked out ahead (``run``)
        self._day_open: Decimal | None = None
        self._before_day: tuple[dict[str, Decimal], Decimal, Decimal] = ({}, ZERO, ZERO)
        self._flows = ZERO
        self._net_realized = ZERO
        self._held: dict[str, Decimal] = {s: p.quantity for s, p in self.positions.items()}
        self._realized_today = ZERO
        self._open_trades: dict[str, Trade] = {}
        self._pending_scores: dict[str, deque[tuple[int, str, Decimal]]] = {}
        self._bar_count: dict[str, int] = {}
        self._next_sample: datetime | None = None
        self._peak_curve = ZERO
        self._trough_curve = ZERO  # the lowest equity since the peak
        self.result = Result(settings, strategy.kind, strategy.version)
        # Signals worked out ahead by the strategy's ``on_series``, one entry per coming bar.
        self._ahead: dict[str, deque[list[SignalIntent]]] = {}

    # --- running --------------------------------------------------------------------------

    def run(self, steps: Iterable[list[Bar]], progress: Progress | None = None) -> Result:
        on_series = getattr(self.strategy, "on_series", None)
        self._series = on_series is not None
        for chunk in _chunks(steps, SERIES_CHUNK_STEPS):
            if on_series is not None:
                self._signals_ahead(chunk, on_series)
            for step in chunk:
                self.step(step)
                if progress is not None:
                    progress(self.result.bars)
        self._finish()
        return self.result

    def _signals_ahead(self, chunk: tuple[list[Bar], ...], on_series) -> None:
        """The strategy's signals for each bar of the next steps, from its ``on_series`` over
        each symbol's window so far and the chunk's bars: what ``on_bar`` gives each window
        (``strategies.base``), worked out a chunk at a time so memory stays flat."""
        fresh: dict[str, list[Bar]] = {}
        for step in chunk:
            for bar in step:
                symbol_bars = fresh.get(bar.symbol)
                if symbol_bars is None:
                    symbol_bars = fresh[bar.symbol] = []
                symbol_bars.append(bar)
        span = max(1, self.strategy.warmup)
        for symbol, bars in fresh.items():
            window = self.windows.get(symbol, ())
            history = list(window)[max(0, len(window) - self.strategy.warmup + 1) :]
            self._ahead[symbol] = deque(on_series(history + bars, len(history)))
            # The window as it will be after the chunk's last bar: the steps read the signals
            # worked out here, not the window, so it is moved once a chunk, not once a bar.
            self.windows[symbol] = deque(itertools.chain(window, bars), maxlen=span)

    def step(self, bars: list[Bar]) -> None:
        now = bars[0].close_time
        if self._next_day is None or now >= self._next_day:
            self._new_day(now)
        result = self.result
        result.bars += len(bars)
        result.steps += 1
        trading = self.settings.trade_from is None or now >= self.settings.trade_from
        if trading and result.start is None:
            result.start = now
        marks, stops, counts = self.marks, self.stops, self._bar_count
        pending_scores = self._pending_scores
        exchange = self.exchange
        quotes, open_orders = exchange.quotes, exchange.open_by_id
        for bar in bars:
            symbol = bar.symbol
            marks[symbol] = bar.close
            count = counts[symbol] = counts.get(symbol, 0) + 1
            pending = pending_scores.get(symbol)
            if pending and pending[0][0] <= count:
                self._score(bar, count, pending)
            if open_orders:
                for answer in exchange.on_bar(bar):
                    self._apply_result(answer, now)
            else:  # what ``on_bar`` does with no order open
                quotes[symbol] = bar
            if symbol in stops:  # only a position with levels can exit on the bar
                self._exits(bar, now)
        if self.futures:
            self._liquidations(now)
        ahead, windows, series = self._ahead, self.windows, self._series
        first_close, last_close = result.first_close, result.last_close
        for bar in bars:
            symbol = bar.symbol
            intents = None
            if series:  # the windows move a chunk at a time (``_signals_ahead``)
                queue = ahead.get(symbol)
                if queue:
                    intents = queue.popleft()
            if intents is None:
                window = windows.get(symbol)
                if window is None:
                    window = windows[symbol] = deque(maxlen=max(1, self.strategy.warmup))
                window.append(bar)
            if not trading:
                continue
            if symbol not in first_close:
                first_close[symbol] = bar.close
            last_close[symbol] = bar.close
            if intents is None:
                intents = self.strategy.on_bar(list(window))
            for intent in intents:
                self._decide(intent, bar, now)
        if trading:
            self._record_equity(now)

    # --- signals to orders ----------------------------------------------------------------

    def _decide(self, intent: SignalIntent, bar: Bar, now: datetime) -> None:
        result = self.result
        index = len(result.signals)
        symbol = intent.symbol
        rules = self.settings.rules.get(symbol)
        position = self.positions.get(symbol)
        held = ZERO if position is None else position.quantity
        price = self.marks.get(symbol)
        pending = self._pending_scores.get(symbol)
        if pending is None:
            pending = self._pending_scores[symbol] = deque()
        pending.append(
            (self._bar_count[symbol] + self.settings.hit_horizon, intent.side, bar.close)
        )
        quantity = order_quantity(
            close_position=intent.close_position,
            quantity=None,
            notional=intent.notional,
            held=held,
            price=price,
            rules=rules,
        )
        if price is None:
            return self._deny(intent, now, Reason.NO_MARKET_DATA)
        if quantity is None or quantity <= 0:
            reason, _ = sizing_denial(
                symbol=intent.symbol,
                close_position=intent.close_position,
                notional=intent.notional,
                rules=rules,
            )
            return self._deny(intent, now, reason)
        decision = evaluate(
            OrderIntent(
                symbol=intent.symbol,
                side=intent.side,
                quantity=quantity,
                price=price,
                confidence=intent.confidence,
                leverage=self.settings.leverage,
            ),
            self.settings.limits,
            self._book_state(now),
            self.settings.rules,
        )
        if not decision.approved:
            return self._deny(intent, now, str(decision.reason))
        # A futures order that only shrinks the position opens nothing: it holds its fee alone,
        # as the risk check's margin does (``futures.margin_shortfall``).
        reducing = self.futures and not grows_position(intent.side, quantity, held)
        if reducing:
            self._reducing.add(len(result.orders))
        if not self._lock(intent.symbol, intent.side, quantity, price, reducing):
            short = Reason.INSUFFICIENT_MARGIN if self.futures else Reason.INSUFFICIENT_BALANCE
            return self._deny(intent, now, short)
        result.signals.append(
            SignalRecord(now, intent.symbol, intent.side, intent.confidence, "submitted")
        )
        self._place(index, intent.symbol, intent.side, quantity, price, "signal", now)

    def _deny(self, intent: SignalIntent, now: datetime, reason: str) -> None:
        self.result.signals.append(
            SignalRecord(now, intent.symbol, intent.side, intent.confidence, "denied", str(reason))
        )

    def _book_state(self, now: datetime) -> BookState:
        """The book as the risk checks see it now. Between two changes of the book within a
        step (an order held or placed, a fill booked or released, a new trading state) it is
        the same, so it is made once for them: most signals are denied and change nothing."""
        key = (now, self._book_version)
        if self._book_cache is not None and self._book_cache[0] == key:
            return self._book_cache[1]
        book = self._make_book_state(now)
        self._book_cache = (key, book)
        return book

    def _make_book_state(self, now: datetime) -> BookState:
        recent = self._recent_orders
        if recent:
            since = now - _MINUTE
            while recent and recent[0] < since:
                recent.popleft()
        settings = self.settings
        futures = {}
        if self.futures:
            futures = {
                "available_balance": self._margin().available_balance,
                "brackets": self.brackets,
            }
        return BookState(
            trading_state=self.state,
            kind=settings.kind,
            positions={p.symbol: p.quantity for p in self._open_positions},
            balances=self._ledger_free(),
            fee_rate=settings.paper.taker_fee_rate,
            marks=self.marks,
            daily_pnl=self._daily_pnl(),
            orders_last_minute=len(recent),
            **futures,
        )

    def _ledger_free(self) -> dict[str, Decimal]:
        return {
            asset: _EXACT.subtract(total, self.ledger_locked.get(asset, ZERO))
            for asset, total in self.totals.items()
        }

    def _hold(
        self, symbol: str, side: str, remaining: Decimal, price: Decimal, reducing: bool = False
    ) -> tuple[str, Decimal]:
        # What live holds for an open order (``ledger.services.order_lock``); an exit opens
        # nothing, as a reduce-only order.
        rules = self.settings.rules[symbol]
        settings = self.settings
        return order_hold(
            settings.kind, side, remaining, price, settings.paper.taker_fee_rate,
            base=rules.base_asset, quote=rules.quote_asset, leverage=settings.leverage,
            reduce_only=reducing,
        )  # fmt: skip

    def _lock(
        self, symbol: str, side: str, quantity: Decimal, price: Decimal, reducing: bool = False
    ) -> bool:
        self._book_version += 1
        asset, amount = self._hold(symbol, side, quantity, price, reducing)
        if self.futures:
            free = self._margin().available_balance
        elif asset in self.totals:  # as the ledger's free balances have it
            free = _EXACT.subtract(self.totals[asset], self.ledger_locked.get(asset, ZERO))
        else:
            free = ZERO
        if amount > free and not (self.futures and reducing):
            return False
        self.ledger_locked[asset] = self.ledger_locked.get(asset, ZERO) + amount
        return True

    def _place(
        self,
        signal_index: int,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        purpose: str,
        now: datetime,
    ) -> None:
        self._book_version += 1
        result = self.result
        order_index = len(result.orders)
        client_id = client_order_id_for(f"backtest-{order_index}")
        result.orders.append(OrderRecord(signal_index, now, symbol, side, quantity, price, purpose))
        self._order_holds[client_id] = (order_index, symbol, price)
        self._recent_orders.append(now)
        request = OrderRequest(
            symbol=symbol,
            side=side,
            order_type="MARKET",
            quantity=quantity,
            client_order_id=client_id,
        )
        try:
            answer = self.exchange.place_order(request)
        except ExchangeError as error:
            reason = (
                Reason.INSUFFICIENT_BALANCE
                if error.insufficient_balance
                else Reason.EXCHANGE_REJECTED
            )
            self._release(client_id, quantity, ZERO)
            self._set_order(order_index, status="REJECTED", reason=str(reason))
            return
        self._apply_result(answer, now)

    def _set_order(self, index: int, status: str, reason: str | None = None) -> None:
        orders = self.result.orders
        o = orders[index]
        reason = o.reason if reason is None else reason
        if o.status != status or o.reason != reason:
            orders[index] = OrderRecord(o.signal_index, o.ts, o.symbol, o.side, o.quantity,
                                        o.reference_price, o.purpose, status, reason)  # fmt: skip

    def _release(self, client_id: str, before_remaining: Decimal, after_remaining: Decimal):
        self._book_version += 1
        order_index, symbol, price = self._order_holds[client_id]
        order = self.result.orders[order_index]
        side = order.side
        reducing = order.purpose != "signal" or order_index in self._reducing
        asset, before = self._hold(symbol, side, before_remaining, price, reducing)
        _, after = self._hold(symbol, side, after_remaining, price, reducing)
        self.ledger_locked[asset] = max(ZERO, self.ledger_locked.get(asset, ZERO) - before + after)

    def _apply_result(self, answer: OrderResult, now: datetime) -> None:
        """Records an exchange answer as ``trading.execution.orders.apply_order_result`` does."""
        order_index, symbol, _ = self._order_holds[answer.client_order_id]
        order = self.result.orders[order_index]
        filled_before = (
            sum((f.quantity for f in self.result.fills if f.order_index == order_index), ZERO)
            if order.status == "PARTIALLY_FILLED"
            else ZERO
        )
        filled_now = ZERO
        for fill in answer.fills:  # as ``sum`` from zero adds them
            filled_now += fill.quantity
        executed = filled_before + filled_now
        rules = self.settings.rules[symbol]
        for fill in answer.fills:
            booked = fill_from_trade(
                order.side,
                fill.quantity,
                fill.price,
                fill.commission,
                fill.commission_asset,
                base_asset=rules.base_asset,
                quote_asset=rules.quote_asset,
                ts=now,
            )
            realized = self._book(symbol, booked, rules)
            self.result.fills.append(
                FillRecord(
                    order_index,
                    now,
                    symbol,
                    order.side,
                    booked.quantity,
                    booked.price,
                    booked.fee,
                    realized,
                )
            )
        status = str(answer.status)
        if executed >= order.quantity:
            status = "FILLED"
        open_after = status in ("NEW", "PARTIALLY_FILLED")
        remaining_after = order.quantity - executed if open_after else ZERO
        self._release(answer.client_order_id, order.quantity - filled_before, remaining_after)
        self._set_order(order_index, status=status)
        if answer.fills:
            self._automatic_state()

    def _book(self, symbol: str, fill, rules: SymbolRules) -> Decimal:
        self._book_version += 1
        state = self.positions.get(symbol)
        if state is None:
            state = PositionState(symbol)
        new_state, effect = apply_fill(
            state, fill, lot_step=max(rules.step_size, rules.market_step_size)
        )
        # Totals moved on the exchange's side (the same moves: ``fill_moves``).
        net = _EXACT.subtract(effect.realized_pnl, fill.fee)
        self._net_realized = _EXACT.add(self._net_realized, net)
        self._realized_today = _EXACT.add(self._realized_today, net)
        self._flows = _EXACT.add(
            self._flows, cash_flow(fill.side, fill.quantity, fill.price, fill.fee)
        )
        self._held[symbol] = _EXACT.add(self._held.get(symbol, ZERO), fill.signed_quantity)
        if self.futures:  # no base asset moves: the contract settles in the quote asset
            wallet = self.totals.get(self.quote, ZERO)
            self.totals[self.quote] = _EXACT.add(wallet, wallet_move(effect.realized_pnl, fill.fee))
        before_net = state.net_realized_pnl
        if state.is_flat and not new_state.is_flat:
            self._open_trades[symbol] = Trade(symbol, fill.ts, _net_before=before_net)
        elif not state.is_flat:
            trade = self._open_trades.get(symbol)
            if trade is not None and (
                new_state.is_flat or _sign(new_state.quantity) != _sign(state.quantity)
            ):
                closing_fee = fill.fee
                if not new_state.is_flat:  # flipped: the rest of the fee opened the new one
                    closing_fee = fill.fee * effect.closed_quantity / fill.quantity
                trade.closed_at = fill.ts
                trade.net_pnl = (
                    state.net_realized_pnl + effect.realized_pnl - closing_fee - trade._net_before
                )
                self.result.trades.append(trade)
                del self._open_trades[symbol]
                if not new_state.is_flat:
                    self._open_trades[symbol] = Trade(
                        symbol,
                        fill.ts,
                        _net_before=new_state.net_realized_pnl - (fill.fee - closing_fee),
                    )
        self.positions[symbol] = new_state
        self._open_positions = [p for p in self.positions.values() if not p.is_flat]
        self._marked = False
        if new_state.is_flat:
            self.stops.pop(symbol, None)
        return effect.realized_pnl

    def _exits(self, bar: Bar, now: datetime) -> None:
        state = self.positions.get(bar.symbol)
        levels = self.stops.get(bar.symbol)
        if state is None or state.is_flat or levels is None:
            return
        trigger = exit_trigger(state, bar.close, *levels)
        if trigger is None:
            return
        rules = self.settings.rules[bar.symbol]
        quantity = rules.round_quantity(abs(state.quantity), market=True)
        side = "SELL" if state.quantity > 0 else "BUY"
        if quantity > 0 and self._lock(bar.symbol, side, quantity, bar.close, reducing=True):
            self._place(-1, bar.symbol, side, quantity, bar.close, str(trigger).lower(), now)

    # --- the book over time ---------------------------------------------------------------

    def _valuation(self) -> Valuation:
        """The book at its marks; a futures account's as the ledger values it (the wallet plus
        the positions' unrealized PnL: the margin balance)."""
        valued = self._book_valuation()
        if not self.futures:
            return valued
        return replace(valued, market_value=valued.unrealized_pnl)

    def _margin(self) -> MarginState:
        """A futures account's margin at the marks, with what its open orders hold."""
        holdings = [
            Holding(p, self.settings.leverage, self.brackets[p.symbol],
                    self.marks.get(p.symbol, p.avg_entry_price))
            for p in self.positions.values()
            if not p.is_flat
        ]  # fmt: skip
        wallet = self.totals.get(self.quote, ZERO)
        return margin_state(wallet, holdings, self.ledger_locked.get(self.quote, ZERO))

    def _liquidations(self, now: datetime) -> None:
        """Closes every position at its mark with the taker fee when the margin balance has
        fallen below the maintenance margin, as ``execution.exits.liquidate_account`` does."""
        if not any(not p.is_flat for p in self.positions.values()):
            return
        if not self._margin().liquidating:
            return
        result = self.result
        for position in [p for p in self.positions.values() if not p.is_flat]:
            symbol = position.symbol
            rules = self.settings.rules[symbol]
            mark = self.marks.get(symbol, position.avg_entry_price)
            quantity = position.quantity.copy_abs()
            side = "SELL" if position.quantity > 0 else "BUY"
            order_index = len(result.orders)
            result.orders.append(OrderRecord(-1, now, symbol, side, quantity, mark,
                                             "liquidation", status="FILLED"))  # fmt: skip
            fee = quantity * mark * self.settings.paper.taker_fee_rate
            booked = fill_from_trade(side, quantity, mark, fee, self.quote,
                                     base_asset=rules.base_asset, quote_asset=rules.quote_asset,
                                     ts=now)  # fmt: skip
            realized = self._book(symbol, booked, rules)
            result.fills.append(FillRecord(order_index, now, symbol, side, booked.quantity,
                                           booked.price, booked.fee, realized))  # fmt: skip
        result.liquidations += 1
        self._automatic_state()

    def _book_valuation(self):
        return value_account(self.totals.get(self.quote, ZERO), self._open_positions, self.marks)

    def _new_day(self, now: datetime) -> None:
        day = now.date()
        # The next UTC midnight, in the bars' own zone: until then the day is the same.
        midnight = datetime.combine(day, time(0), tzinfo=now.tzinfo)
        self._next_day = midnight + timedelta(days=1)
        if day != self._day:
            self._day = day
            self._day_open = None
            self._realized_today = ZERO
            self._before_day = (dict(self._held), self._flows, self._net_realized)

    def _daily_pnl(self) -> Decimal:
        if self._day_open is None:
            quantities, flows, net = self._before_day
            marks = {s: self.marks[s] for s, q in quantities.items() if q}
            self._day_open = unrealized_at_open(quantities, marks, flows, net)
        _, unrealized = open_value(self._open_positions, self.marks)
        return daily_pnl(self._realized_today, unrealized, self._day_open)

    def _automatic_state(self) -> None:
        # The two sums of a valuation (``_valuation``), without its per-symbol maps: a futures
        # account's equity is its margin balance, the wallet plus the unrealized PnL.
        market_value, unrealized = open_value(self._open_positions, self.marks)
        equity = _EXACT.add(
            self.totals.get(self.quote, ZERO), unrealized if self.futures else market_value
        )
        self.peak_equity = max(self.peak_equity, equity)
        target, why = automatic_state(
            self.state,
            daily_pnl=daily_pnl(
                self._realized_today,
                unrealized,
                self._day_open if self._day_open is not None else self._open_unrealized(),
            ),
            daily_loss_limit=self.settings.limits.daily_loss_limit,
            equity=equity,
            peak_equity=self.peak_equity,
            max_drawdown=self.settings.limits.max_drawdown,
        )
        if why is not None:
            self.state = target
            self._book_version += 1

    def _open_unrealized(self) -> Decimal:
        self._daily_pnl()
        assert self._day_open is not None
        return self._day_open

    def _record_equity(self, now: datetime) -> None:
        open_positions = self._open_positions
        result = self.result
        if open_positions:
            cash = self.totals.get(self.quote, ZERO)
            if self.futures:  # the margin balance
                equity = self._valuation().equity
            elif self._marked or all(p.symbol in self.marks for p in open_positions):
                self._marked = True  # marks are never taken away: until the positions change
                # The ledger's equity alone: the rest of a valuation is not needed each step.
                equity = account_equity(cash, open_positions, self.marks)
            else:  # an opening position before its first bar: valued at its entry price
                equity = value_account(cash, open_positions, self.marks).equity
            result.steps_in_market += 1
        else:  # a flat book is worth its cash: no valuation to make
            equity = self.totals.get(self.quote, ZERO)
        result.final_equity = equity
        result.end = now
        if equity > self._peak_curve:
            self._peak_curve = self._trough_curve = equity
        elif self._peak_curve > 0 and equity < self._trough_curve:
            # Below the same peak, only a new low can deepen the drawdown (the rounded
            # division is monotonic), so the division is done for those alone.
            self._trough_curve = equity
            drawdown = (self._peak_curve - equity) / self._peak_curve
            if drawdown > result.max_drawdown:
                result.max_drawdown = drawdown
        if self._next_sample is None or now >= self._next_sample:
            result.equity_curve.append((now, equity))
            self._next_sample = now + self.settings.sample_every
        else:
            result.equity_curve[-1] = (result.equity_curve[-1][0], equity)

    def _score(self, bar: Bar, count: int, pending: deque[tuple[int, str, Decimal]]) -> None:
        """Scores the signals due at the symbol's ``count``-th bar."""
        while pending and pending[0][0] <= count:
            _, side, entry = pending.popleft()
            self.result.scored += 1
            if (bar.close > entry) if side == "BUY" else (bar.close < entry):
                self.result.hits += 1

    def _finish(self) -> None:
        if self.result.equity_curve:
            # The last sample holds the last step's equity, at the last step's time.
            ts, _ = self.result.equity_curve[-1]
            self.result.equity_curve[-1] = (
                max(ts, self.result.end or ts),
                self.result.final_equity,
            )


def _chunks(steps: Iterable[list[Bar]], size: int) -> Iterator[tuple[list[Bar], ...]]:
    iterator = iter(steps)
    while chunk := tuple(itertools.islice(iterator, size)):
        yield chunk


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def isfinite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
