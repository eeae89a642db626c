"""Download Binance klines into the bar store: resumable (after the last stored bar of the symbol
and interval) and idempotent (bars held already are skipped)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from trading.management.options import moment
from trading.marketdata.bars import interval_length
from trading.marketdata.binance_feed import MarketDataError, build_client
from trading.marketdata.download import download_klines
from trading.primitives import InvalidInput, read_symbol


class Command(BaseCommand):
    help = "Download a symbol's Binance klines between two times into the bar store."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--interval", default="5m", help="a Binance interval: 1m, 5m, 1h...")
        parser.add_argument("--start", required=True, type=moment, help="ISO 8601 with offset")
        parser.add_argument("--end", type=moment, help="ISO 8601 with offset (default: now)")

    def handle(self, *args, symbol: str, interval: str, start, end, **options) -> None:
        try:
            symbol = read_symbol(symbol)
            interval_length(interval)
        except (InvalidInput, ValueError) as error:
            raise CommandError(str(error)) from None
        now = timezone.now()
        end = min(end or now, now)
        if end <= start:
            raise CommandError("--end must be after --start")

        def progress(stored: int) -> None:
            self.stderr.write(f"\r{stored} bars", ending="")
            self.stderr.flush()

        try:
            done = download_klines(build_client(), symbol, interval, start, end, now=now,
                                   progress=progress)  # fmt: skip
        except MarketDataError as error:
            hint = " (run again to resume)" if error.retryable else ""
            raise CommandError(f"{error}{hint}") from None
        self.stderr.write("")
        last = done.last_open_time.isoformat() if done.last_open_time else "none"
        self.stdout.write(
            f"{symbol} {interval}: {done.stored} bars from {done.started_at.isoformat()} "
            f"in {done.pages} request(s); last stored bar opens {last}"
        )
