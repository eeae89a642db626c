"""The recorded Binance spot klines that ship with the platform, for replay and tests.

The files and their provenance are described in ``data/klines/SOURCE.md``: 30 days of 5-minute bars
for each symbol, 8640 rows per file, in Binance's 12-column layout with a header line.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import re
from pathlib import Path

from trading.marketdata.bars import Bar, parse_kline

BUNDLED_DIR = Path(__file__).resolve().parent / "data" / "klines"
BUNDLED_INTERVAL = "5m"

_HEADER = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_asset_volume",
    "number_of_trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
    "ignore",
]
# BTCUSDT-5m-2025-08-21_2025-09-19.csv.gz -> BTCUSDT
_FILE_NAME = re.compile(rf"^(?P<symbol>[A-Z0-9]+)-{BUNDLED_INTERVAL}-.+\.csv\.gz$")


class UnknownSymbolError(LookupError):
    """No recorded klines ship for the symbol asked for."""


def bundled_symbols() -> tuple[str, ...]:
    """The symbols that have recorded klines, sorted: ("BTCUSDT", "ETHUSDT", "SOLUSDT")."""
    return tuple(sorted(_bundled_files()))


def load_bundled_bars(symbol: str) -> list[Bar]:
    """All recorded bars of ``symbol``, oldest first.

    The file is read once per process; each call returns a new list of the same (immutable) bars.
    Raises UnknownSymbolError, naming the symbols there are, when none ship for ``symbol``.
    """
    return list(_load(symbol))


@functools.cache
def _bundled_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in BUNDLED_DIR.glob("*.csv.gz"):
        match = _FILE_NAME.match(path.name)
        if match is None:
            continue
        symbol = match["symbol"]
        if symbol in files:
            raise RuntimeError(f"two bundled kline files for {symbol}: {files[symbol]}, {path}")
        files[symbol] = path
    return files


@functools.cache
def _load(symbol: str) -> tuple[Bar, ...]:
    files = _bundled_files()
    if symbol not in files:
        known = ", ".join(sorted(files)) or "none"
        raise UnknownSymbolError(
            f"no recorded klines for symbol {symbol!r}; the bundled symbols are: {known}"
        )
    path = files[symbol]
    with gzip.open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="ascii", newline="") as text:
        reader = csv.reader(text)
        header = next(reader, None)
        if header != _HEADER:
            raise ValueError(f"{path.name}: unexpected header {header!r}")
        bars: list[Bar] = []
        for line, row in enumerate(reader, start=2):
            try:
                bar = parse_kline(symbol, BUNDLED_INTERVAL, row)
            except ValueError as exc:
                raise ValueError(f"{path.name} line {line}: {exc}") from None
            # Replay steps through the bars in file order, so a row out of order is a broken file.
            if bars and bar.open_time <= bars[-1].open_time:
                raise ValueError(f"{path.name} line {line}: open_time does not rise")
            bars.append(bar)
    return tuple(bars)
