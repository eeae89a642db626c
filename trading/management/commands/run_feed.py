"""The market feed process: closed bars from a replay of recorded klines or from Binance.

It carries on where it stopped: the database holds the last bar it published (``FeedPosition``),
and a restarted feed publishes from the next one. Redis going away does not stop it: it waits
and publishes the same step when Redis answers (``trading.marketdata.feed``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from trading.marketdata.feed import FeedPublisher, FeedStopped
from trading.marketdata.services import feed_positions
from trading.primitives import InvalidInput, read_symbol_list

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Publish closed bars as market.bar events: replayed (default) or live from Binance."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--source", choices=["replay", "binance"],
                            default=settings.MARKET_DATA_SOURCE)  # fmt: skip
        parser.add_argument("--symbols", default=",".join(settings.SYMBOLS))
        parser.add_argument(
            "--bar-seconds",
            type=float,
            default=settings.REPLAY_BAR_SECONDS,
            help="replay: wall seconds per bar (0 = as fast as possible)",
        )
        parser.add_argument("--at-end", choices=["stop", "loop"], default=settings.REPLAY_AT_END)
        parser.add_argument(
            "--start-index",
            type=int,
            default=None,
            help="replay: the first step to publish, ignoring where the last run stopped "
            "(default: right after the last bar published, or QT_REPLAY_START_DAYS into the "
            "bundled history on a first run)",
        )
        parser.add_argument(
            "--history",
            type=int,
            default=150,
            help="replay: steps before the first one recorded as recent bars (no events), so the "
            "ai service can compute its features from the first published bar",
        )
        parser.add_argument(
            "--wait-for-model",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="publish the first bar only once a model serves, so every bar gets its signal",
        )
        parser.add_argument(
            "--simulated-time",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="replay: the bar store holds only the seed (the history before "
            "QT_REPLAY_START_DAYS) and the bars played, and each pass of a loop starts over "
            "from the seed and the model trained on it",
        )
        parser.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: no)")
        parser.add_argument("--poll-seconds", type=float, default=5.0, help="binance: poll every")

    def handle(self, *args, **options) -> None:
        self.stopping = threading.Event()
        self.waits_for_model = options["wait_for_model"]
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        try:
            symbols = read_symbol_list(options["symbols"])
        except InvalidInput as error:
            raise CommandError(f"--symbols: {error}") from None
        if options["source"] == "replay":
            self.replay(symbols, options)
        else:
            self.binance(symbols, options)

    def replay(self, symbols: list[str], options: dict) -> None:
        from trading.marketdata.barstore import replay_start, seed_bar_store
        from trading.marketdata.klines import bundled_symbols
        from trading.marketdata.prices import record_bars
        from trading.marketdata.replay import ReplayConfig, replay_bars

        unknown = sorted(set(symbols) - set(bundled_symbols()))
        if unknown:
            raise CommandError(
                f"no recorded klines for {', '.join(unknown)}; "
                f"bundled: {', '.join(bundled_symbols())}"
            )
        history = max(0, options["history"])
        simulated = options["simulated_time"]
        resume_after = None
        start = options["start_index"]
        fresh = start is None
        if start is None:
            positions = feed_positions("replay", symbols)
            if positions:
                resume_after = max(row.close_time for row in positions.values())
                fresh = False
            start = replay_start()
        config = ReplayConfig(
            symbols=tuple(symbols),
            bar_seconds=options["bar_seconds"],
            at_end=options["at_end"],
            start_index=start,
            resume_after=resume_after,
            pass_start=replay_start() if simulated else 0,
        )
        run = replay_bars(config, clock=time.monotonic, sleep=self.stopping.wait)
        publisher = FeedPublisher("replay", wait=self.stopping.wait)
        if simulated:
            seed_bar_store(symbols)
            if fresh:
                self.start_pass(run, symbols, publisher, history=0)
        where = (
            f"after the bar closing at {resume_after.isoformat()}"
            if resume_after
            else f"at step {start}"
        )
        self.stdout.write(
            f"replaying {', '.join(symbols)} {where}: one bar every {config.bar_seconds}s, "
            f"{config.at_end} at the end of the data"
        )
        steps = 0
        try:
            # Recent bars for the ai service's features; the price store keeps what it holds.
            seed = [bar for step in run.history(history) for bar in step]
            if seed:
                publisher.call(lambda: record_bars(seed))
            if options["wait_for_model"]:
                self.wait_for_model()
            played_pass = run.passes
            for bars in run:
                if self.stopping.is_set():
                    break
                if simulated and run.passes != played_pass:
                    played_pass = run.passes
                    self.start_pass(run, symbols, publisher, history)
                publisher.publish(bars)
                steps += 1
                if options["max_steps"] and steps >= options["max_steps"]:
                    break
        except FeedStopped:
            pass
        if run.end is not None:
            self.stdout.write(f"replay finished: {run.end}")
        self.stdout.write(f"published {steps} steps")

    def binance(self, symbols: list[str], options: dict) -> None:
        from datetime import UTC, datetime

        from trading.marketdata.binance_feed import (
            BinanceKlineSource,
            MarketDataError,
            build_client,
        )

        # The first poll brings enough closed bars for the ai service's features, or, after a
        # restart, every bar since the last one published.
        since = {s: row.open_time for s, row in feed_positions("binance", symbols).items()}
        source = BinanceKlineSource(
            build_client(),
            symbols,
            settings.KLINE_INTERVAL,
            backfill=options["history"],
            since=since,
        )
        publisher = FeedPublisher("binance", wait=self.stopping.wait)
        if options["wait_for_model"]:
            self.wait_for_model()
        self.stdout.write(f"polling Binance klines for {', '.join(symbols)}")
        delay = options["poll_seconds"]
        while not self.stopping.is_set():
            try:
                bars = source.poll(datetime.now(UTC))
            except MarketDataError as error:
                if not error.retryable:
                    raise CommandError(f"Binance refused the klines request: {error}") from error
                logger.warning("klines unavailable, retrying: %s", error)
                self.stopping.wait(error.retry_after or delay)
                continue
            try:
                publisher.publish(bars)
            except FeedStopped:
                break
            self.stopping.wait(delay)

    def wait_for_model(self) -> None:
        """Returns once a model serves (or the feed is told to stop): a bar published before
        would get no signal, or a late one."""
        from trading.models import ModelVersion

        if ModelVersion.objects.serving().exists():
            return
        logger.info("no model serves yet: the feed waits for one before its first bar")
        self.stdout.write("waiting for a model to serve before publishing the first bar")
        while not self.stopping.wait(0.5):
            model = ModelVersion.objects.serving().first()
            if model is not None:
                logger.info("model %s serves: the feed starts", model.version)
                self.stdout.write(f"model {model.version} serves: publishing")
                return

    def start_pass(self, run, symbols: list[str], publisher: FeedPublisher, history: int) -> None:
        """Simulated time starts (over) at the pass ``run`` is on: the bar store holds that
        pass's seed and no bar played since, a model trained on the seed alone serves, and the
        seed's last ``history`` steps are the recent bars of the ai service's features."""
        from trading import bus
        from trading.marketdata.barstore import restart_simulated_time, retire_models_past_seed
        from trading.marketdata.prices import record_bars
        from trading.models import ModelVersion

        steps = run.seed_steps(run.passes)
        if run.passes:
            retired = restart_simulated_time(symbols, [bar for step in steps for bar in step])
            self.stdout.write(f"replay pass {run.passes + 1} starts over from the seed")
        else:
            retired = retire_models_past_seed(symbols)
        # A platform's first model is trained as it starts (manage.py train_model --if-missing).
        if retired and not ModelVersion.objects.serving().exists():
            # Every version learnt from bars still to play: one must learn from the seed alone.
            bus.send(bus.RETRAIN_MODEL, "replay", queue="ai", ignore_result=True)
            logger.info("no model trained on the seed alone: a training on it was requested")
        recent = [bar for step in steps[len(steps) - history :] for bar in step] if history else []
        if recent:
            publisher.call(lambda: record_bars(recent))
        if run.passes and self.waits_for_model:
            self.wait_for_model()
