"""The market feed process: closed bars from a replay of recorded klines or from Binance.

It carries on where it stopped: the database holds the last bar it published (``FeedPosition``),
and a restarted feed publishes from the next one. Redis going away does not stop it: it waits
and publishes the same step when Redis answers (``trading.marketdata.feed``).
"""

from __future__ import annotations

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
            "(default: right after the last bar published, or REPLAY_START_STEP on a first run)",
        )
        parser.add_argument(
            "--history",
            type=int,
            default=150,
            help="replay: steps before the first one recorded as recent bars (no events), so the "
            "ai service can compute its features from the first published bar",
        )
        parser.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: no)")
        parser.add_argument("--poll-seconds", type=float, default=5.0, help="binance: poll every")

    def handle(self, *args, **options) -> None:
        self.stopping = threading.Event()
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
        from trading.marketdata.klines import bundled_symbols
        from trading.marketdata.prices import record_bars
        from trading.marketdata.replay import REPLAY_START_STEP, ReplayConfig, replay_bars

        unknown = sorted(set(symbols) - set(bundled_symbols()))
        if unknown:
            raise CommandError(
                f"no recorded klines for {', '.join(unknown)}; "
                f"bundled: {', '.join(bundled_symbols())}"
            )
        history = max(0, options["history"])
        resume_after = None
        start = options["start_index"]
        if start is None:
            positions = feed_positions("replay", symbols)
            if positions:
                resume_after = max(row.close_time for row in positions.values())
            start = REPLAY_START_STEP
        config = ReplayConfig(
            symbols=tuple(symbols),
            bar_seconds=options["bar_seconds"],
            at_end=options["at_end"],
            start_index=start,
            resume_after=resume_after,
        )
        run = replay_bars(config, clock=time.monotonic, sleep=self.stopping.wait)
        publisher = FeedPublisher("replay", wait=self.stopping.wait)
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
            for bars in run:
                if self.stopping.is_set():
                    break
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
