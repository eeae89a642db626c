"""What the suites share: the flow they expect, and helpers to read the platform's pages,
its event log and the fate of sandbox signals."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from trading.models import Position, Signal
from trading.observability.services import SERVICES
from trading.selftest.base import Context, HttpAnswer

INTEGRATION = "integration"
E2E = "e2e"

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
# Trades that are meant to pass the risk checks carry full confidence, so that they pass
# whatever minimum the operator has set; the risk scenario sends low confidence on purpose.
TRADE_CONFIDENCE = "1"
SMALL_NOTIONAL = Decimal("50")
FLOW_NOTIONAL = "100"

# The trading flow of one signal, in the order the event log must hold it (the design's flow).
FLOW = (
    "signal.generated",
    "order.requested",
    "order.submitted",
    "order.filled",
    "position.opened",
    "position.closed",
    "learning.recorded",
)

SignalStatus = Signal.Status
# A signal exec-risk has decided: denied, or its order answered by the exchange.
DECIDED = frozenset(set(SignalStatus) - {SignalStatus.PENDING, SignalStatus.SUBMITTED})
# A signal whose story is over: nothing more will fill.
FINISHED = frozenset(
    {SignalStatus.FILLED, SignalStatus.DENIED, SignalStatus.REJECTED, SignalStatus.FAILED}
)


# --- small helpers --------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _percentile(values: Iterable[float], percent: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _qty(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _answer(answer: HttpAnswer) -> str:
    """An HTTP answer in a few words, for a failure's detail."""
    if answer.status is None:
        return f"no answer ({answer.body})"
    failing = answer.body.get("failing") if isinstance(answer.body, dict) else None
    return f"HTTP {answer.status}" + (f" (failing: {', '.join(failing)})" if failing else "")


def _service_pages(ctx: Context, page: str) -> dict[str, HttpAnswer]:
    """``/services/<s>/<page>`` of every service."""
    return {name: ctx.get(f"/services/{name}/{page}") for name in SERVICES}


def _ready_paths() -> list[str]:
    return ["/ready", *(f"/services/{name}/ready" for name in SERVICES)]


def _not_ready(ctx: Context) -> list[str]:
    """The ready endpoints (web and every service) that do not answer 200, described."""
    answers = {path: ctx.get(path) for path in _ready_paths()}
    return [f"{path}: {_answer(a)}" for path, a in answers.items() if a.status != 200]


def _parse_metrics(text: object) -> tuple[list, str]:
    """The metric families of a Prometheus text page, or an error saying why it does not parse."""
    from prometheus_client.parser import text_string_to_metric_families

    if not isinstance(text, str):
        return [], f"not a text page: {type(text).__name__}"
    try:
        return list(text_string_to_metric_families(text)), ""
    except (ValueError, TypeError, IndexError, KeyError) as error:
        return [], f"{type(error).__name__}: {error}"


def _log_clock() -> datetime:
    """Now, by the clock of the Redis server that stamps event-log ids."""
    from trading.store import redis_client

    seconds, micros = redis_client().time()
    return datetime.fromtimestamp(seconds + micros / 1e6, UTC)


def _events_for(correlation_id: str, since: datetime | None) -> list[tuple[str, object]]:
    """The events of one correlation id still in the log, oldest first, with their stream ids."""
    from trading.events.replay import MAX_LIMIT, read_window

    return read_window(correlation_id=correlation_id, since=since, limit=MAX_LIMIT)


def _sweep() -> dict[str, dict]:
    from trading.analytics.supervision import sweep

    return sweep()


def _down(problems: list[str]) -> bool:
    """Whether the sweep counts the service as not ready (rather than degraded otherwise)."""
    return any(p.startswith("not ready") for p in problems)


# --- trading on the sandbox -----------------------------------------------------------------


def _wait_signals(
    signals: list[Signal], until: frozenset[str], timeout: float
) -> tuple[list[Signal], bool]:
    """The signals as they stand once every status is in ``until`` (True), or when the time is
    up (False); in the order given."""
    ids = [s.pk for s in signals]
    deadline = time.monotonic() + timeout
    while True:
        rows = {s.pk: s for s in Signal.objects.filter(pk__in=ids)}
        current = [rows[i] for i in ids]
        if all(s.status in until for s in current):
            return current, True
        if time.monotonic() > deadline:
            return current, False
        time.sleep(0.1)


def _fate(signal: Signal) -> str:
    text = f"{signal.side} {signal.symbol} {signal.status}"
    if signal.reason:
        text += f" {signal.reason}"
    if signal.detail:
        text += f" ({signal.detail})"
    return text


def _seconds_to_fate(signal: Signal) -> float:
    return (signal.updated_at - signal.created_at).total_seconds()


def _small_quantity(symbol: str) -> tuple[Decimal | None, str]:
    """A market-order quantity worth about 50 USDT at the latest price, or why there is none."""
    from trading.marketdata.prices import latest_quote
    from trading.marketdata.services import symbol_rules

    quote = latest_quote(symbol)
    rules = symbol_rules().get(symbol)
    if quote is None:
        return None, f"no price for {symbol} yet"
    if rules is None:
        return None, f"no exchange rules for {symbol}"
    quantity = rules.round_quantity(SMALL_NOTIONAL / quote.price, market=True)
    if quantity <= 0:
        return None, f"50 USDT of {symbol} is less than one step"
    return quantity, ""


def _close_positions(ctx: Context, symbols: Iterable[str] | None = None) -> list[str]:
    """Closes the sandbox's open positions (in ``symbols``, or all) with signals for their full
    quantity; returns what could not be closed."""
    positions = Position.objects.filter(account=ctx.account, status=Position.Status.OPEN)
    if symbols is not None:
        positions = positions.filter(symbol__in=list(symbols))
    closing = [
        ctx.sandbox_signal(
            p.symbol,
            "SELL" if p.quantity > 0 else "BUY",
            confidence=TRADE_CONFIDENCE,
            quantity=_qty(abs(p.quantity)),
            notional=None,
        )
        for p in positions
        if p.quantity
    ]
    if not closing:
        return []
    closed, _ = _wait_signals(closing, FINISHED, timeout=20)
    return [f"closing: {_fate(s)}" for s in closed if s.status != SignalStatus.FILLED]


def _submit_together(ctx: Context, orders: list[dict]) -> list[Signal]:
    """Sends the signals one right after the other, so exec-risk decides them concurrently."""
    return [ctx.sandbox_signal(**order) for order in orders]


@dataclass
class Cycle:
    """One round trip on the sandbox: a BUY, a SELL of the whole position, and their events."""

    symbol: str
    since: datetime
    buy: Signal | None = None
    sell: Signal | None = None
    position_id: int | None = None
    # Event types of the round trip, in the log's order: the BUY's correlation id and the SELL's.
    events: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    problem: str = ""  # empty when the cycle went all the way

    @property
    def correlation_id(self) -> str:
        return str(self.buy.correlation_id) if self.buy else ""

    @property
    def sell_correlation_id(self) -> str:
        return str(self.sell.correlation_id) if self.sell else ""

    @property
    def flow(self) -> dict:
        """What ``_round_trip_events`` needs to read the round trip back."""
        return {
            "correlation_ids": [c for c in (self.correlation_id, self.sell_correlation_id) if c],
            "correlation_id": self.correlation_id,
            "since": self.since,
        }

    def data(self) -> dict:
        return {
            "symbol": self.symbol,
            "correlation_id": self.correlation_id,
            "sell_correlation_id": self.sell_correlation_id,
            "events": self.events,
            **self.timings_ms,
        }


def _round_trip_events(flow: dict) -> list[tuple[str, object]]:
    """The events of a round trip's signals (``Cycle.flow``), in the log's order."""
    found = [e for cid in flow["correlation_ids"] for e in _events_for(cid, flow["since"])]
    return sorted(found, key=lambda entry: tuple(map(int, entry[0].split("-"))))


# Filed under the SELL that closed the position; the rest of the flow under the BUY that opened it
# (``learning.recorded`` carries the position's opener).
CLOSING_EVENTS = frozenset({"position.closed"})


def _trading_cycle(ctx: Context, symbol: str, wanted: Iterable[str] = FLOW) -> Cycle:
    """BUY ``FLOW_NOTIONAL`` USDT of ``symbol`` on the sandbox, wait until it is filled, SELL the
    whole position, wait until it is closed, then wait for the ``wanted`` events: a position
    event is filed under the order that moved the position, so ``position.closed`` under the
    SELL's correlation id (naming the BUY's as the one that opened it), the others under the
    BUY's."""
    problems = _close_positions(ctx, [symbol])  # start flat, so the BUY opens its own position
    cycle = Cycle(symbol, since=_log_clock())
    if problems:
        cycle.problem = f"could not start flat in {symbol}: {'; '.join(problems)}"
        return cycle
    started = time.perf_counter()
    buy = ctx.sandbox_signal(symbol, "BUY", confidence=TRADE_CONFIDENCE, notional=FLOW_NOTIONAL)
    (cycle.buy,), _ = _wait_signals([buy], FINISHED, timeout=20)
    cycle.timings_ms["buy_filled_ms"] = _ms(time.perf_counter() - started)
    if cycle.buy.status != SignalStatus.FILLED:
        cycle.problem = f"the BUY did not fill: {_fate(cycle.buy)}"
        _close_positions(ctx, [symbol])
        return cycle
    position = Position.objects.filter(
        account=ctx.account, correlation_id=cycle.buy.correlation_id, status=Position.Status.OPEN
    ).first()
    if position is None:
        cycle.problem = "the BUY filled but no position was opened under its correlation id"
        _close_positions(ctx, [symbol])
        return cycle
    cycle.position_id = position.pk

    selling = time.perf_counter()
    sell = ctx.sandbox_signal(
        symbol,
        "SELL",
        confidence=TRADE_CONFIDENCE,
        quantity=_qty(position.quantity),
        notional=None,
    )
    (cycle.sell,), _ = _wait_signals([sell], FINISHED, timeout=20)
    cycle.timings_ms["sell_filled_ms"] = _ms(time.perf_counter() - selling)
    if cycle.sell.status != SignalStatus.FILLED:
        cycle.problem = f"the SELL did not fill: {_fate(cycle.sell)}"
        _close_positions(ctx, [symbol])
        return cycle
    if Position.objects.get(pk=position.pk).status != Position.Status.CLOSED:
        cycle.problem = f"the SELL filled but position {position.pk} is still open"
        _close_positions(ctx, [symbol])
        return cycle

    wanted = set(wanted)
    missing: list[str] = []

    def seen() -> bool:
        story = _round_trip_events(cycle.flow)
        cycle.events = [e.type for _, e in story]
        filed = {cycle.correlation_id: set(), cycle.sell_correlation_id: set()}
        for _, event in story:
            filed[event.correlation_id].add(event.type)
        missing[:] = [
            f"{t} (under the {'SELL' if t in CLOSING_EVENTS else 'BUY'})"
            for t in FLOW
            if t in wanted
            and t
            not in filed[cycle.sell_correlation_id if t in CLOSING_EVENTS else cycle.correlation_id]
        ]
        return not missing

    if not Context.wait_for(seen, timeout=15, step=0.25):
        cycle.problem = f"events missing 15 s after the SELL filled: {', '.join(missing)}"
    elif "position.closed" in wanted:
        [closed] = [
            e
            for _, e in _events_for(cycle.sell_correlation_id, cycle.since)
            if e.type == "position.closed"
        ]
        opener = closed.payload.get("opened_by_correlation_id")
        if opener != cycle.correlation_id:
            cycle.problem = f"position.closed names {opener} as its opener, not the BUY"
    cycle.timings_ms["total_ms"] = _ms(time.perf_counter() - started)
    return cycle


def _order_problem(types: list[str], expected: Iterable[str]) -> str:
    """Empty when the ``expected`` types all appear in ``types`` in that order (first of each)."""
    expected = list(expected)
    missing = [name for name in expected if name not in types]
    if missing:
        return f"missing {', '.join(missing)}"
    for earlier, later in itertools.pairwise(expected):
        if types.index(earlier) > types.index(later):
            return f"{later} comes before {earlier}"
    return ""


def _health_summary(ctx: Context) -> tuple[dict[str, dict], list[str]]:
    """Each service's health (status, uptime, live workers) and what is wrong with it."""
    summary, problems = {}, []
    for name, answer in _service_pages(ctx, "health").items():
        body = answer.body if isinstance(answer.body, dict) else {}
        status, uptime = body.get("status"), body.get("uptime_seconds")
        summary[name] = {
            "http": answer.status,
            "status": status,
            "uptime_seconds": uptime,
            "workers": len(body.get("workers", [])),
            "ms": _ms(answer.seconds),
        }
        if answer.status != 200:
            problems.append(f"{name}: {_answer(answer)}, status {status}")
        elif status not in ("pass", "warn"):
            problems.append(f"{name}: status {status!r}")
        elif not isinstance(uptime, int | float) or uptime <= 0:
            problems.append(f"{name}: uptime_seconds {uptime!r}")
    return summary, problems


def _health_line(summary: dict[str, dict]) -> str:
    return ", ".join(
        f"{n} {s['status']} up {s['uptime_seconds']:.0f} s" for n, s in summary.items()
    )
