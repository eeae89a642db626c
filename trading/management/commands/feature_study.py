"""Score candidate feature sets walk-forward on the bundled klines, beside the no-skill baseline."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from trading.ai.study import FEATURE_SETS, evaluate, markdown_table
from trading.marketdata.klines import load_bundled_bars


class Command(BaseCommand):
    help = (
        "Run every candidate feature set (trading/ai/study.py) through the training's "
        "walk-forward evaluation on the bundled klines; print a Markdown table."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT")
        parser.add_argument("--folds", type=int, default=5)
        parser.add_argument("--only", help="comma-separated feature set names")

    def handle(self, *args, symbols: str, folds: int, only: str | None, **options) -> None:
        bars = {symbol: load_bundled_bars(symbol) for symbol in symbols.split(",")}
        first = min(b[0].open_time for b in bars.values())
        last = max(b[-1].close_time for b in bars.values())
        self.stdout.write(
            f"data: {', '.join(bars)} 5m klines, {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} "
            f"UTC; {folds} walk-forward folds, the label horizon as the gap"
        )
        wanted = set(only.split(",")) if only else None
        rows = []
        for feature_set in FEATURE_SETS:
            if wanted and feature_set.name not in wanted:
                continue
            started = time.monotonic()
            rows.append(evaluate(feature_set, bars, folds))
            self.stderr.write(f"{feature_set.name}: {time.monotonic() - started:.1f}s")
        self.stdout.write(markdown_table(rows))
