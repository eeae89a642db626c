"""Backtest speed and memory: the bundled 3 symbols x 30 days of 5-minute bars (25,920 bars).

1. Speed, SMA crossover (fast 10, slow 30, 1,000 USDT a trade) through the full path of
   ``trading.backtest``: every step's bars merged in time order, the strategy on each closed
   bar, sizing, the risk checks, the paper fill model, the ledger's booking, the automatic
   trading state, the equity curve, then the report. Bars per second, the median of
   ``--runs`` runs.
   Baseline in the same run: backtesting.py 0.6.6 (``FractionalBacktest``, as its docs say for
   fractional coins) running the same rule on the same bars, one symbol at a time (it backtests
   one instrument): BUY 1,000 USDT's worth when the fast SMA crosses above the slow one, close
   when it crosses below, 0.1 % commission; its indicators computed with pandas' rolling mean in
   ``init`` as its docs do. Timed: ``Backtest.run`` (its data frames are built before, as ours
   are loaded before). The goal: ours at least the baseline's bars per second.
2. Speed, the ai model (a model trained on the first three days, as the tests' is) over its
   warm-up (120 steps) and ``--ai-steps`` steps after it (features and a calibrated prediction
   per bar), bars per second over all of them. The goal: at least 0.3 of the baseline's.
3. The stored-run path for reference (``--stored``): the same SMA run through
   ``trading.backtest.services.run_backtest`` on a fresh SQLite bar store seeded with the bundled
   bars: read from the database in chunks, run, report and fills stored.
4. Memory: ``tracemalloc``'s peak during the SMA run over the first third, two thirds and all of
   the bars (the bars themselves loaded before it starts), beside the number of fills the run
   keeps: what a run holds is its windows, open orders, fills and an hourly equity curve, so
   the peak should follow the fills, not the bars.

    .venv/bin/python bench/backtest.py [--runs 5] [--ai-steps 200] [--stored]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.backtests import SYMBOLS  # noqa: E402
from tests.support.backtests import settings as backtest_settings  # noqa: E402
from trading.backtest.engine import Backtest, Settings, steps_of  # noqa: E402
from trading.backtest.report import build_report  # noqa: E402
from trading.execution.paper import PaperConfig  # noqa: E402
from trading.marketdata.klines import load_bundled_bars  # noqa: E402
from trading.strategies.rules import SmaCrossover  # noqa: E402

FAST, SLOW, NOTIONAL = 10, 30, Decimal(1000)
CASH = Decimal(100_000)
COMMISSION = 0.001
GOAL_AI_SHARE = 0.3


def settings() -> Settings:
    """The tests' backtest settings (limits that let the strategy's orders through, the bundled
    rules, 100,000 USDT), with backtesting.py's commission as the taker fee."""
    return backtest_settings(
        paper=PaperConfig(taker_fee_rate=Decimal(str(COMMISSION))), starting_cash=CASH
    )


def run_ours(strategy, series, steps: int | None = None):
    cut = [bars[:steps] if steps else bars for bars in series]
    started = time.perf_counter()
    result = Backtest(strategy, settings()).run(steps_of([iter(bars) for bars in cut]))
    build_report(result)
    return time.perf_counter() - started, result


def baseline_frames(series):
    import pandas as pd

    frames = []
    for bars in series:
        frames.append(
            pd.DataFrame(
                {
                    "Open": [float(b.open) for b in bars],
                    "High": [float(b.high) for b in bars],
                    "Low": [float(b.low) for b in bars],
                    "Close": [float(b.close) for b in bars],
                    "Volume": [float(b.volume) for b in bars],
                },
                index=pd.DatetimeIndex([b.open_time for b in bars]),
            )
        )
    return frames


def run_baseline(frames) -> tuple[float, int]:
    import pandas as pd
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest, crossover

    def sma(values, n):
        return pd.Series(values).rolling(n).mean()

    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)

        def next(self):
            if crossover(self.fast, self.slow) and not self.position:
                self.buy(size=float(NOTIONAL) / self.equity)
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    elapsed, trades = 0.0, 0
    for frame in frames:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            test = FractionalBacktest(
                frame, SmaCross, cash=float(CASH), commission=COMMISSION,
                fractional_unit=1e-6, finalize_trades=True,
            )  # fmt: skip
            started = time.perf_counter()
            stats = test.run()
            elapsed += time.perf_counter() - started
        trades += int(stats["# Trades"])
    return elapsed, trades


def memory_peaks(strategy, series) -> list[tuple[int, int, int]]:
    """(bars, peak KiB, fills) for the first third, two thirds and all of the bars."""
    points = []
    length = len(series[0])
    for share in (1, 2, 3):
        steps = length * share // 3
        tracemalloc.start()
        _, result = run_ours(strategy, series, steps)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        points.append((result.bars, peak // 1024, len(result.fills)))
        del result
    return points


def stored_run(series, runs: int) -> list[float]:
    from benchkit import start_platform

    var = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    redis_server = start_platform(var)
    try:
        from datetime import timedelta

        from trading.backtest.services import create_run, run_backtest
        from trading.marketdata.barstore import Origin, store_bars
        from trading.models import StrategyConfig

        for bars in series:
            store_bars(bars, Origin.SEED)
        StrategyConfig.objects.create(
            name="bench-sma", kind="sma_crossover",
            parameters={"fast": FAST, "slow": SLOW, "notional": str(NOTIONAL)},
            confidence=Decimal("0.8"),
        )  # fmt: skip
        start = series[0][0].open_time
        end = series[0][-1].close_time + timedelta(seconds=1)
        times = []
        for _ in range(runs):
            run = create_run("bench-sma", list(SYMBOLS), start, end)
            started = time.perf_counter()
            run_backtest(run.pk)
            times.append(time.perf_counter() - started)
        return times
    finally:
        redis_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ai-steps", type=int, default=200)
    parser.add_argument("--stored", action="store_true", help="also time the stored-run path")
    args = parser.parse_args()

    series = [load_bundled_bars(s) for s in SYMBOLS]
    total = sum(len(bars) for bars in series)
    sma = SmaCrossover(FAST, SLOW, NOTIONAL, Decimal("0.8"))
    frames = baseline_frames(series)

    ours, theirs, our_trades, their_trades = [], [], 0, 0
    for _ in range(args.runs):  # alternated, so both meet the same load
        elapsed, result = run_ours(sma, series)
        ours.append(total / elapsed)
        our_trades = len(result.trades)
        elapsed, their_trades = run_baseline(frames)
        theirs.append(total / elapsed)
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    print(f"backtest speed on this machine ({os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}), {total} bars, median of {args.runs} runs:")  # fmt: skip
    print(f"  backtesting.py 0.6.6, SMA {FAST}/{SLOW} (baseline): {theirs_median:,.0f} bars/s "
          f"({their_trades} round trips)")  # fmt: skip
    print(f"  trading.backtest, SMA {FAST}/{SLOW}: {ours_median:,.0f} bars/s "
          f"({our_trades} round trips), {ours_median / theirs_median:.2f}x the baseline: "
          f"{'meets' if ours_median >= theirs_median else 'misses'} the goal (>= 1x)")  # fmt: skip

    from trading.ai.training import train_walk_forward
    from trading.strategies.ai import AiModel

    history = {s: bars[: 3 * 288] for s, bars in zip(SYMBOLS, series, strict=True)}
    model = train_walk_forward(history)
    ai = AiModel(model, Decimal(100))
    ai_runs, predicted = [], 0
    for _ in range(max(1, args.runs // 2)):
        elapsed, result = run_ours(ai, series, ai.warmup + args.ai_steps)
        ai_runs.append(result.bars / elapsed)
        predicted = len(result.signals)
    ai_median = statistics.median(ai_runs)
    share = ai_median / theirs_median
    verdict = "meets" if share >= GOAL_AI_SHARE else "misses"
    print(f"  trading.backtest, ai model {model.version} ({ai.warmup} steps of warm-up, then "
          f"{args.ai_steps}: {predicted} predictions): {ai_median:,.0f} bars/s, "
          f"{share:.3f}x the baseline: "
          f"{verdict} the goal (>= {GOAL_AI_SHARE}x)")  # fmt: skip

    if args.stored:
        times = stored_run(series, max(1, args.runs // 2))
        print(f"  stored-run path (bar store, run, report, fills stored): "
              f"{total / statistics.median(times):,.0f} bars/s")  # fmt: skip

    print("memory (tracemalloc peak during the SMA run, the bars loaded before):")
    for bars, peak, fills in memory_peaks(sma, series):
        print(f"  {bars:>6} bars: peak {peak:,} KiB, {fills} fills kept")


if __name__ == "__main__":
    main()
