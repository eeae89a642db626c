"""The market feed process: closed bars from a replay of recorded klines or from Binance."""

from __future__ import annotations

import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from trading.marketdata.services import publish_bars

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
            help="replay: the first step to publish (default: right after the warm-up history)",
        )
        parser.add_argument(
            "--history",
            type=int,
            default=150,
            help="replay: steps before the start recorded as recent bars (no events), so the ai "
            "service can compute its features from the first published bar",
        )
        parser.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: no)")
        parser.add_argument("--poll-seconds", type=float, default=5.0, help="binance: poll every")

    def handle(self, *args, **options) -> None:
        self.stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        symbols = [s.strip().upper() for s in options["symbols"].split(",") if s.strip()]
        if options["source"] == "replay":
            self.replay(symbols, options)
        else:
            self.binance(symbols, options)

    def replay(self, symbols: list[str], options: dict) -> None:
        from trading.marketdata.klines import bundled_symbols
        from trading.marketdata.replay import ReplayConfig, replay_bars

        unknown = sorted(set(symbols) - set(bundled_symbols()))
        if unknown:
            raise CommandError(
                f"no recorded klines for {', '.join(unknown)}; "
                f"bundled: {', '.join(bundled_symbols())}"
            )
        history = max(0, options["history"])
        start = history if options["start_index"] is None else options["start_index"]
        self.seed_history(symbols, start, history)
        config = ReplayConfig(
            symbols=tuple(symbols),
            bar_seconds=options["bar_seconds"],
            at_end=options["at_end"],
            start_index=start,
        )
        run = replay_bars(config, clock=time.monotonic, sleep=self.stopping.wait)
        self.stdout.write(
            f"replaying {', '.join(symbols)}: one bar every {config.bar_seconds}s, "
            f"{config.at_end} at the end of the data"
        )
        steps = 0
        for bars in run:
            if self.stopping.is_set():
                break
            publish_bars(bars)
            steps += 1
            if options["max_steps"] and steps >= options["max_steps"]:
                break
        if run.end is not None:
            self.stdout.write(f"replay finished: {run.end}")
        self.stdout.write(f"published {steps} steps")

    def seed_history(self, symbols: list[str], start: int, history: int) -> None:
        from trading.marketdata.klines import load_bundled_bars
        from trading.marketdata.prices import record_bars

        for index in range(max(0, start - history), start):
            record_bars([load_bundled_bars(symbol)[index] for symbol in symbols])

    def binance(self, symbols: list[str], options: dict) -> None:
        from datetime import UTC, datetime

        from trading.marketdata.binance_feed import (
            BinanceKlineSource,
            MarketDataError,
            build_client,
        )

        # The first poll brings enough closed bars for the ai service's features.
        source = BinanceKlineSource(
            build_client(), symbols, settings.KLINE_INTERVAL, backfill=options["history"]
        )
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
            publish_bars(bars)
            self.stopping.wait(delay)
