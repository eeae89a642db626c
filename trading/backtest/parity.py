"""The parity check: a live paper session's recorded bars, replayed through the backtest with the
same strategies and settings, give the same orders and fills as the live run did.

A window of a live account (by the wall clock: bars stored, orders created from ``start`` to
``end``) is backtested from the account's book at its start (the assets' totals and positions
that its earlier fills add up to, ``ledger.book.apply_fill`` as the ledger books them), on the
bars the bar store received in the window, the strategies' warm-up taken from the bars before
it. Then each symbol's orders (side, quantity, reference price) and fills (side, quantity,
price, fee) are compared in order; each difference is a mismatch. Symbols are compared one at a
time because live the bars of one step are handled concurrently, so orders of different
symbols on one step may be created in either order.

The clocks. Live, the order rate counts orders by their creation on the wall clock and the
daily PnL starts at the wall clock's 00:00 UTC; the backtest counts both on bar time. Live
decisions are not moved onto bar time; instead the parity backtest runs with the order rate,
the daily loss limit and the drawdown limit lifted (they cannot bind), and a live signal that
any of them denied, or a trading state change in the window, is reported as a mismatch of its
own: a difference the clocks could cause is never hidden, and never blamed on the engine.

What live does that a backtest of the window cannot, and so ends the comparable window where it
happens: an order not sent by a strategy (the API, the trade ticket, Telegram, rebalancing,
a close) moves the window's start after it; an account that runs the ai model is not compared,
because its live order size follows recent performance (``analytics.sizing``) and its model
may change during the window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings as django_settings

from trading.backtest.engine import Backtest, Result, Settings, steps_of
from trading.backtest.services import run_settings
from trading.ledger import services as ledger
from trading.ledger.book import AccountKind, PositionState, apply_fill, fill_moves
from trading.ledger.book import Fill as BookFill
from trading.marketdata.bars import Bar
from trading.marketdata.barstore import bar_of
from trading.marketdata.services import symbol_rules
from trading.models import (
    Account,
    Fill,
    MarketBar,
    Order,
    Signal,
    StrategyConfig,
    TradingStateChange,
)
from trading.risk.reasons import Reason
from trading.strategies.base import SignalIntent, Strategy
from trading.strategies.services import rule_strategies, runs_ai_model

ZERO = Decimal(0)
STRATEGY_SOURCE = "strategy"
# Denials that depend on the clock they are counted on (see the module's docstring).
CLOCK_REASONS = frozenset({Reason.ORDER_RATE.value, Reason.DAILY_LOSS_LIMIT.value})
UNBOUND = Decimal("1e18")


class NotComparable(Exception):
    """The window cannot be backtested as it ran live; the message says why."""


@dataclass(frozen=True)
class OrderKey:
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal

    def __str__(self) -> str:
        return f"{self.side} {self.quantity.normalize():f} {self.symbol} @ {self.price:f}"


@dataclass(frozen=True)
class FillKey:
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal

    def __str__(self) -> str:
        return (
            f"{self.side} {self.quantity.normalize():f} {self.symbol} @ {self.price:f} "
            f"fee {self.fee.normalize():f}"
        )


@dataclass(frozen=True)
class Mismatch:
    what: str  # "order", "fill" or "clock"
    symbol: str
    index: int
    live: str
    backtest: str

    def __str__(self) -> str:
        return f"{self.what} {self.symbol}#{self.index}: live {self.live}, backtest {self.backtest}"


@dataclass
class Parity:
    """The comparison of a window: what each side did, and where they differ."""

    account: str
    strategy: str
    start: datetime
    end: datetime
    bars: int
    live_orders: list[OrderKey] = field(default_factory=list)
    live_fills: list[FillKey] = field(default_factory=list)
    backtest_orders: list[OrderKey] = field(default_factory=list)
    backtest_fills: list[FillKey] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "strategy": self.strategy,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "bars": self.bars,
            "orders": len(self.live_orders),
            "fills": len(self.live_fills),
            "mismatches": len(self.mismatches),
            "first_mismatches": [str(m) for m in self.mismatches[:5]],
        }


# --- the comparison (pure) ------------------------------------------------------------------


def compare(
    what: str, live: Sequence[OrderKey | FillKey], backtest: Sequence[OrderKey | FillKey]
) -> list[Mismatch]:
    """Each symbol's items in order, side by side: one mismatch per position that differs or
    that only one side has."""
    by_symbol: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for item in live:
        by_symbol[item.symbol][0].append(item)
    for item in backtest:
        by_symbol[item.symbol][1].append(item)
    found = []
    for symbol in sorted(by_symbol):
        left, right = by_symbol[symbol]
        for index in range(max(len(left), len(right))):
            a = left[index] if index < len(left) else None
            b = right[index] if index < len(right) else None
            if a != b:
                found.append(Mismatch(what, symbol, index, str(a or "none"), str(b or "none")))
    return found


@dataclass(frozen=True)
class Combined:
    """The account's rule strategies as one, in the order live runs them (by name)."""

    strategies: tuple[Strategy, ...]
    kind: str = "combined"

    @property
    def warmup(self) -> int:
        return max(s.warmup for s in self.strategies)

    @property
    def version(self) -> str:
        return " + ".join(s.version for s in self.strategies)

    def on_bar(self, window: Sequence[Bar]) -> list[SignalIntent]:
        intents: list[SignalIntent] = []
        for strategy in self.strategies:
            intents += strategy.on_bar(list(window)[-strategy.warmup :])
        return intents


def backtest_keys(result: Result) -> tuple[list[OrderKey], list[FillKey]]:
    orders = [
        OrderKey(o.symbol, o.side, o.quantity, o.reference_price)
        for o in result.orders
        if o.purpose == "signal"
    ]
    signal_orders = {i for i, o in enumerate(result.orders) if o.purpose == "signal"}
    fills = [
        FillKey(f.symbol, f.side, f.quantity, f.price, f.fee)
        for f in result.fills
        if f.order_index in signal_orders
    ]
    return orders, fills


# --- the live side --------------------------------------------------------------------------


def check_parity(account: Account, start: datetime, end: datetime) -> Parity:
    """Compares the account's live window [start, end] (wall clock) with its backtest. Raises
    ``NotComparable`` when the window cannot be backtested as it ran."""
    configs = list(StrategyConfig.objects.filter(accounts=account).order_by("name"))
    if not configs:
        raise NotComparable(f"{account.name} runs no rule strategy (the ai model alone)")
    if runs_ai_model(configs):
        raise NotComparable(
            f"{account.name} runs the ai model, whose live order size follows recent performance"
        )
    strategies = rule_strategies(configs)
    if len(strategies) != len(configs):
        raise NotComparable("a strategy configuration no longer validates")
    start = _comparable_start(account, start, end)
    symbols = sorted(django_settings.SYMBOLS)
    window = MarketBar.objects.filter(
        symbol__in=symbols,
        interval=django_settings.KLINE_INTERVAL,
        stored_at__gte=start,
        stored_at__lte=end,
    )
    bar_times = window.order_by("close_time").values_list("close_time", flat=True)
    first_close, last_close = (
        bar_times.first(),
        window.order_by("-close_time").values_list("close_time", flat=True).first(),
    )
    if first_close is None or last_close is None:
        raise NotComparable(f"no bars stored from {start:%H:%M} to {end:%H:%M}")
    strategy = Combined(tuple(s for _, s in strategies))
    series = [_bars(symbol, first_close, last_close, strategy.warmup) for symbol in symbols]
    settings = parity_settings(account, symbols, start, trade_from=first_close)
    result = Backtest(strategy, settings).run(steps_of(series))
    parity = Parity(
        account.name, strategy.version, start, end, window.count(),
    )  # fmt: skip
    orders = list(
        Order.objects.filter(account=account, created_at__gte=start, created_at__lte=end)
        .order_by("created_at", "pk")
    )  # fmt: skip
    parity.live_orders = [OrderKey(o.symbol, o.side, o.quantity, o.reference_price) for o in orders]
    parity.live_fills = [
        FillKey(f.symbol, f.side, f.quantity, f.price, f.fee)
        for f in Fill.objects.filter(order__in=orders).order_by("ts", "pk")
    ]
    parity.backtest_orders, parity.backtest_fills = backtest_keys(result)
    parity.mismatches = (
        _clock_mismatches(account, start, end)
        + compare("order", parity.live_orders, parity.backtest_orders)
        + compare("fill", parity.live_fills, parity.backtest_fills)
    )
    return parity


def parity_settings(
    account: Account, symbols: list[str], start: datetime, *, trade_from: datetime
) -> Settings:
    """The live settings (paper fill model, fee, limits, symbol rules) with the clock's limits
    lifted, and the account's book as its fills before ``start`` leave it."""
    base = run_settings({}, symbols)
    limits = replace(
        base.limits,
        max_orders_per_minute=10**9,
        daily_loss_limit=UNBOUND,
        max_drawdown=Decimal(1),
    )
    balances, positions = book_before(account, start)
    return replace(
        base,
        limits=limits,
        rules=symbol_rules(),
        starting_cash=account.starting_cash,
        kind=AccountKind(account.kind),
        trade_from=trade_from,
        opening_balances=balances,
        opening_positions=positions,
    )


def book_before(
    account: Account, moment: datetime
) -> tuple[dict[str, Decimal], dict[str, PositionState]]:
    """The account's asset totals and positions from its fills before ``moment``, booked as the
    ledger books them."""
    totals: dict[str, Decimal] = {"USDT": account.starting_cash}
    positions: dict[str, PositionState] = {}
    rules = symbol_rules()
    fills = Fill.objects.filter(order__account=account, ts__lt=moment).order_by("ts", "pk")
    for row in fills.iterator():
        base, quote_asset = ledger.assets_of(row.symbol)
        booked = BookFill(row.side, row.quantity, row.price, row.fee, row.ts)
        for asset, moved in fill_moves(
            booked.side, booked.quantity, booked.price, booked.fee, base=base, quote=quote_asset
        ).items():
            totals[asset] = totals.get(asset, ZERO) + moved
        known = rules.get(row.symbol)
        step = max(known.step_size, known.market_step_size) if known is not None else ZERO
        state = positions.get(row.symbol, PositionState(row.symbol))
        positions[row.symbol] = apply_fill(state, booked, lot_step=step)[0]
    return totals, positions


def _comparable_start(account: Account, start: datetime, end: datetime) -> datetime:
    """The window's start, moved after the last order in it that no strategy sent and after
    the last trading state change in it."""
    foreign = (
        Order.objects.filter(account=account, created_at__gte=start, created_at__lte=end)
        .exclude(signal__source=STRATEGY_SOURCE)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    changed = (
        TradingStateChange.objects.filter(account=account, at__gte=start, at__lte=end)
        .order_by("-at").values_list("at", flat=True).first()
    )  # fmt: skip
    moments = [m for m in (foreign, changed) if m is not None]
    if moments:
        # After the foreign order's own fills are booked too.
        start = max(moments) + timedelta(seconds=1)
    if start >= end:
        raise NotComparable("orders sent by hand or a state change fill the window")
    return start


def _clock_mismatches(account: Account, start: datetime, end: datetime) -> list[Mismatch]:
    denied = Signal.objects.filter(
        account=account,
        source=STRATEGY_SOURCE,
        created_at__gte=start,
        created_at__lte=end,
        reason__in=CLOCK_REASONS,
    ).order_by("created_at")
    return [
        Mismatch("clock", s.symbol, i, f"{s.side} denied {s.reason}", "not denied on bar time")
        for i, s in enumerate(denied)
    ]


def _bars(symbol: str, first_close: datetime, last_close: datetime, warmup: int) -> list[Bar]:
    rows = MarketBar.objects.filter(symbol=symbol, interval=django_settings.KLINE_INTERVAL)
    before = list(rows.filter(close_time__lt=first_close).order_by("-open_time")[:warmup])
    during = rows.filter(close_time__gte=first_close, close_time__lte=last_close)
    return [bar_of(r) for r in reversed(before)] + [bar_of(r) for r in during.order_by("open_time")]
