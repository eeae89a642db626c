"""The end-to-end suite: the original spec's end-to-end scenarios (8 scenarios)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from decimal import Decimal

from trading.models import LearningRecord, Signal
from trading.observability.services import SERVICES
from trading.selftest.base import Context, Outcome, scenario
from trading.selftest.scenarios.common import (
    DECIDED,
    E2E,
    FINISHED,
    FLOW,
    SMALL_NOTIONAL,
    SYMBOLS,
    TRADE_CONFIDENCE,
    SignalStatus,
    _answer,
    _close_positions,
    _fate,
    _health_line,
    _health_summary,
    _ms,
    _not_ready,
    _parse_metrics,
    _ready_paths,
    _submit_together,
    _trading_cycle,
    _wait_signals,
)

# --- suite: e2e (the original spec's end-to-end suite) --------------------------------------


@scenario(E2E, "all_services_healthy", "All services healthy, uptime tracked")
def all_services_healthy(ctx: Context) -> Outcome:
    """Every service is healthy with a positive uptime, and the uptime is tracked: a second
    reading a second later is larger."""
    first, problems = _health_summary(ctx)
    if problems:
        return Outcome.failed("; ".join(problems), services=first)
    time.sleep(1.0)
    second, problems = _health_summary(ctx)
    for name in SERVICES:
        if not problems and second[name]["uptime_seconds"] <= first[name]["uptime_seconds"]:
            problems.append(
                f"{name}: uptime did not grow ({first[name]['uptime_seconds']} s, then "
                f"{second[name]['uptime_seconds']} s)"
            )
    if problems:
        return Outcome.failed("; ".join(problems), services=second)
    return Outcome.passed(_health_line(second) + "; uptimes growing", services=second)


@scenario(E2E, "full_trading_cycle", "Full trading cycle (ETHUSDT)")
def full_trading_cycle(ctx: Context) -> Outcome:
    """On ETHUSDT: signal -> order requested -> submitted -> filled -> position opened -> SELL ->
    position closed -> learning recorded, every step an event under the signal's correlation id,
    and the learning record stored against the closed position."""
    cycle = _trading_cycle(ctx, "ETHUSDT")
    if cycle.problem:
        return Outcome.failed(cycle.problem, **cycle.data())
    if not LearningRecord.objects.filter(position_id=cycle.position_id).exists():
        return Outcome.failed("learning.recorded was published but no record is stored")
    timings = cycle.timings_ms
    return Outcome.passed(
        f"ETHUSDT: BUY filled in {timings['buy_filled_ms']} ms, SELL in "
        f"{timings['sell_filled_ms']} ms; all {len(FLOW)} steps in the event log; "
        f"cycle {timings['total_ms']} ms",
        **cycle.data(),
    )


def _trades_outcome(ctx: Context, signals: list[Signal], started: float, label: str) -> Outcome:
    """Waits for sandbox trades, closes what they opened and judges them: all decided and at
    least 95% filled."""
    settled, _ = _wait_signals(signals, FINISHED, timeout=30)
    wall = time.perf_counter() - started
    problems = _close_positions(ctx)
    filled = [s for s in settled if s.status == SignalStatus.FILLED]
    decided = [s for s in settled if s.status in DECIDED]
    rate = len(filled) / len(settled)
    first = min(s.created_at for s in settled)
    last = max(s.updated_at for s in decided) if decided else first
    span = max((last - first).total_seconds(), 1e-3)
    figures = {
        "success_rate": round(rate, 3),
        "trades_per_second": round(len(decided) / span, 2),
        "wall_ms": _ms(wall),
        "fates": [_fate(s) for s in settled],
    }
    if len(decided) < len(settled):
        problems.insert(0, f"{len(settled) - len(decided)} of {len(settled)} not decided in 30 s")
    if rate < 0.95:
        others = [_fate(s) for s in settled if s.status != SignalStatus.FILLED]
        problems.insert(0, f"success rate {rate:.0%} < 95%: {others}")
    line = (
        f"{len(filled)}/{len(settled)} {label} filled ({rate:.0%}), "
        f"{figures['trades_per_second']} trades/s"
    )
    if problems:
        return Outcome.failed(line + "; " + "; ".join(problems), **figures)
    return Outcome.passed(line, **figures)


@scenario(E2E, "multi_symbol", "BTCUSDT, ETHUSDT and SOLUSDT at once")
def multi_symbol(ctx: Context) -> Outcome:
    """Three sandbox signals, one per symbol, sent together: at least 95% of them filled."""
    started = time.perf_counter()
    signals = _submit_together(
        ctx,
        [
            {"symbol": s, "side": "BUY", "confidence": TRADE_CONFIDENCE,
             "notional": str(SMALL_NOTIONAL)}
            for s in SYMBOLS
        ],
    )  # fmt: skip
    return _trades_outcome(ctx, signals, started, "symbols")


@dataclass(frozen=True)
class RiskCase:
    name: str
    reason: str
    signal: dict
    skip: str = ""  # why this case cannot be made here


def _risk_cases(symbol: str) -> list[RiskCase]:
    from trading.marketdata.prices import latest_quote
    from trading.marketdata.services import symbol_rules
    from trading.risk.services import limits_for

    limits = limits_for(symbol)
    base = {"symbol": symbol, "side": "BUY"}
    cases = []

    minimum = limits.min_confidence
    low = Decimal("0.5") if minimum > Decimal("0.5") else minimum / 2
    cases.append(
        RiskCase(
            "low confidence",
            "LOW_CONFIDENCE",
            {**base, "confidence": str(low), "notional": str(SMALL_NOTIONAL)},
            skip="" if minimum > 0 else "the minimum confidence is 0: no confidence is too low",
        )
    )

    oversize = limits.max_position_notional * Decimal("1.5") + 100
    quote, rules = latest_quote(symbol), symbol_rules().get(symbol)
    skip = ""
    if quote is None or rules is None:
        skip = f"no price or exchange rules for {symbol}"
    else:
        quantity = rules.round_quantity(oversize / quote.price, market=True)
        too_big = [limit for limit in (rules.market_max_qty, rules.max_qty) if limit]
        if any(quantity > limit for limit in too_big) or (
            rules.max_notional and rules.apply_max_to_market and oversize > rules.max_notional
        ):
            skip = (
                f"the position limit {limits.max_position_notional} is beyond what the exchange "
                "takes in one market order"
            )
    cases.append(
        RiskCase(
            "oversized position",
            "MAX_POSITION_NOTIONAL",
            {**base, "confidence": TRADE_CONFIDENCE, "notional": str(oversize)},
            skip=skip,
        )
    )

    cases.append(
        RiskCase(
            "excessive leverage",
            "MAX_LEVERAGE",
            {**base, "confidence": TRADE_CONFIDENCE, "notional": str(SMALL_NOTIONAL),
             "leverage": limits.max_leverage + 1},
        )
    )  # fmt: skip
    return cases


@scenario(E2E, "risk_validation", "Risk limits deny with their reasons")
def risk_validation(ctx: Context) -> Outcome:
    """exec-risk denies a signal below the minimum confidence (LOW_CONFIDENCE), one whose
    position would exceed the symbol's maximum position notional (MAX_POSITION_NOTIONAL) and one
    above the maximum leverage (MAX_LEVERAGE), each with exactly that reason."""
    symbol = "BTCUSDT"
    cases = _risk_cases(symbol)
    runnable = [c for c in cases if not c.skip]
    signals = _submit_together(ctx, [c.signal for c in runnable])
    decided, _ = _wait_signals(signals, FINISHED, timeout=20)
    results, problems = {}, []
    for case, signal in zip(runnable, decided, strict=True):
        results[case.name] = _fate(signal)
        if signal.status != SignalStatus.DENIED or signal.reason != case.reason:
            problems.append(f"{case.name}: expected denied {case.reason}, got {_fate(signal)}")
    if any(s.status != SignalStatus.DENIED for s in decided):
        problems += _close_positions(ctx, [symbol])
    skipped = {c.name: c.skip for c in cases if c.skip}
    if problems:
        return Outcome.failed("; ".join(problems), results=results, skipped=skipped)
    if skipped:
        return Outcome.skipped(
            "; ".join(f"{name}: {why}" for name, why in skipped.items())
            + (f" (the others held: {results})" if results else ""),
            results=results,
        )
    return Outcome.passed(
        "denied as expected: " + ", ".join(f"{c.name} {c.reason}" for c in runnable),
        results=results,
    )


def _histogram_totals(families: list, name: str) -> tuple[float, float]:
    """The ``_count`` and ``_sum`` of a histogram family, over all its label sets."""
    count = total = 0.0
    for family in families:
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_count":
                count += sample.value
            elif sample.name == f"{name}_sum":
                total += sample.value
    return count, total


@scenario(E2E, "performance", "Health under 100 ms, signal generation under 1000 ms")
def performance(ctx: Context) -> Outcome:
    """The median of 20 requests to each service's health page is under 100 ms, and the ai
    service's signal latency (bar published to signal published, from its histogram) averages
    under 1 s."""
    medians, problems = {}, []
    for name in SERVICES:
        answers = [ctx.get(f"/services/{name}/health") for _ in range(20)]
        medians[name] = _ms(statistics.median(a.seconds for a in answers))
        bad = [a for a in answers if a.status != 200]
        if bad:
            problems.append(f"{name}: {len(bad)} of 20 health requests answered {_answer(bad[0])}")
        elif medians[name] >= 100:
            problems.append(f"{name}: median health latency {medians[name]} ms >= 100 ms")
    figures: dict = {"health_median_ms": medians}
    health_line = "health medians " + ", ".join(f"{n} {ms} ms" for n, ms in medians.items())

    page = ctx.get("/services/ai/metrics")
    families, error = _parse_metrics(page.body)
    if page.status != 200 or error:
        problems.append(f"/services/ai/metrics: {_answer(page)} {error}".strip())
        return Outcome.failed("; ".join(problems), **figures)
    count, total = _histogram_totals(families, "ai_service_signal_latency_seconds")
    figures["signals_measured"] = int(count)
    if problems:
        return Outcome.failed("; ".join(problems), **figures)
    if count == 0:
        return Outcome.skipped(
            f"{health_line}; no signal latency measured yet (the ai service has produced no "
            "signal: no bars or no model yet)",
            **figures,
        )
    average = total / count
    figures["signal_latency_average_ms"] = _ms(average)
    signal_line = f"signal generation averages {_ms(average)} ms over {int(count)} signals"
    if average >= 1.0:
        return Outcome.failed(f"{signal_line} (>= 1000 ms); {health_line}", **figures)
    return Outcome.passed(f"{health_line}; {signal_line}", **figures)


@scenario(E2E, "load", "10 concurrent trades")
def load(ctx: Context) -> Outcome:
    """Ten sandbox trades of 50 USDT sent together over the three symbols are all decided and at
    least 95% filled; reports the throughput in trades per second."""
    started = time.perf_counter()
    signals = _submit_together(
        ctx,
        [
            {"symbol": SYMBOLS[i % 3], "side": "BUY", "confidence": TRADE_CONFIDENCE,
             "notional": str(SMALL_NOTIONAL)}
            for i in range(10)
        ],
    )  # fmt: skip
    return _trades_outcome(ctx, signals, started, "trades")


@scenario(E2E, "failure_recovery", "INVALIDUSDT rejected, services healthy after")
def failure_recovery(ctx: Context) -> Outcome:
    """A signal for INVALIDUSDT is refused at the API's validation with an error on ``symbol``,
    nothing is stored, and every service is still ready afterwards."""
    from trading.api.serializers import SignalCreateSerializer

    sandbox_signals = Signal.objects.filter(account=ctx.account).count()
    serializer = SignalCreateSerializer(
        data={"symbol": "INVALIDUSDT", "side": "BUY", "confidence": "0.9", "notional": "50"}
    )
    valid = serializer.is_valid()
    errors = {k: [str(m) for m in v] for k, v in serializer.errors.items()}
    problems = []
    if valid or "symbol" not in errors:
        problems.append(f"INVALIDUSDT was not refused on symbol: valid={valid}, errors={errors}")
    stored = Signal.objects.filter(symbol="INVALIDUSDT").count()
    if stored:
        problems.append(f"{stored} INVALIDUSDT signals are stored")
    if Signal.objects.filter(account=ctx.account).count() != sandbox_signals:
        problems.append("the refused signal changed the sandbox's signals")
    problems += _not_ready(ctx)
    if problems:
        return Outcome.failed("; ".join(problems), errors=errors)
    return Outcome.passed(
        f"refused: {errors['symbol'][0]}; nothing stored; every service ready", errors=errors
    )


@scenario(E2E, "metrics_and_ready", "/metrics and /ready valid for every service")
def metrics_and_ready(ctx: Context) -> Outcome:
    """``/metrics`` and every ``/services/<s>/metrics`` parse as Prometheus text, each service's
    page starting with its ``<prefix>_uptime_seconds``; ``/ready`` and every service's ready
    endpoint answer 200."""
    problems, counts = [], {}
    pages: list[tuple[str, str | None]] = [("/metrics", None)]
    pages += [(f"/services/{n}/metrics", f"{s.metric_prefix}_uptime_seconds")
              for n, s in SERVICES.items()]  # fmt: skip
    for path, first in pages:
        answer = ctx.get(path)
        families, error = _parse_metrics(answer.body)
        counts[path] = len(families)
        if answer.status != 200:
            problems.append(f"{path}: {_answer(answer)}")
        elif error:
            problems.append(f"{path} does not parse: {error}")
        elif not families:
            problems.append(f"{path} holds no metrics")
        elif first is not None and families[0].name != first:
            problems.append(f"{path} starts with {families[0].name}, not {first}")
    problems += _not_ready(ctx)
    if problems:
        return Outcome.failed("; ".join(problems), families=counts)
    return Outcome.passed(
        "metric families: "
        + ", ".join(f"{p} {n}" for p, n in counts.items())
        + f"; {len(_ready_paths())} ready endpoints answer 200",
        families=counts,
    )
