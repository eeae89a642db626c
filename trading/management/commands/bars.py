"""Print a window of the bar store: the closed bars the platform received (or was seeded with)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from trading.management.options import moment
from trading.marketdata.barstore import stored_bars
from trading.primitives import InvalidInput, read_symbol


class Command(BaseCommand):
    help = "Print the stored bars of a symbol between two times (ISO 8601), oldest first."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--symbol", required=True)
        parser.add_argument("--start", type=moment, help="bars opening at or after this time")
        parser.add_argument("--end", type=moment, help="bars closing at or before this time")
        parser.add_argument(
            "--limit", type=int, default=500, help="at most this many: the first after --start, "
            "else the last",
        )  # fmt: skip

    def handle(self, *args, symbol: str, start, end, limit: int, **options) -> None:
        try:
            symbol = read_symbol(symbol)
        except InvalidInput as error:
            raise CommandError(f"--symbol: {error}") from None
        if limit < 1:
            raise CommandError("--limit must be at least 1")
        bars = stored_bars(symbol, start=start, end=end, limit=limit)
        self.stdout.write("open_time,close_time,open,high,low,close,volume,trades")
        for bar in bars:
            prices = (bar.open, bar.high, bar.low, bar.close, bar.volume)
            self.stdout.write(
                f"{bar.open_time.isoformat()},{bar.close_time.isoformat()},"
                + ",".join(format(value.normalize(), "f") for value in prices)
                + f",{bar.trades}"
            )
        if not bars:
            self.stderr.write(f"no stored bars of {symbol} in that window")
