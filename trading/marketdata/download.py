"""Historical klines from Binance into the bar store, resumable and idempotent.

``download_klines`` pages through ``/api/v3/klines`` (python-binance's ``get_klines``, a page of
at most ``MAX_LIMIT`` rows from ``startTime``) and stores each page as it arrives, so an
interrupted download keeps what it fetched. It starts after the last bar stored for the symbol
and interval when that is later than ``start``, and the store skips bars it holds already, so
running it again fetches only what is missing and stores nothing twice. Only closed bars are
stored: a bar still open at ``now`` is left for a later run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from binance.client import Client
from django.db.models import Max

from trading.marketdata.bars import Bar, datetime_to_ms, interval_length, parse_kline
from trading.marketdata.barstore import Origin, store_bars
from trading.marketdata.binance_feed import MAX_LIMIT, MarketDataError, fetch_klines
from trading.models import MarketBar

_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Downloaded:
    """What a download did: the bars stored, the pages asked for, where it started."""

    stored: int
    pages: int
    started_at: datetime
    last_open_time: datetime | None


def last_stored_open(symbol: str, interval: str) -> datetime | None:
    return MarketBar.objects.filter(symbol=symbol, interval=interval).aggregate(
        last=Max("open_time")
    )["last"]


def download_klines(
    client: Client,
    symbol: str,
    interval: str,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    page_size: int = MAX_LIMIT,
    progress: Callable[[int], None] | None = None,
) -> Downloaded:
    """Stores the closed bars of ``symbol`` at ``interval`` opening from ``start`` and closing
    by ``end``; resumes after the last stored bar. Raises ``MarketDataError`` from Binance (the
    pages before it stay stored)."""
    length = interval_length(interval)
    if start.utcoffset() is None or end.utcoffset() is None:
        raise ValueError("start and end must be aware datetimes")
    if not 1 <= page_size <= MAX_LIMIT:
        raise ValueError(f"page_size must be 1 to {MAX_LIMIT}, got {page_size}")
    last = last_stored_open(symbol, interval)
    cursor = max(start, last + length) if last is not None else start
    started_at, stored, pages, newest = cursor, 0, 0, last
    while cursor + length - _ONE_MS <= end:
        rows = fetch_klines(client, {
            "symbol": symbol, "interval": interval, "startTime": datetime_to_ms(cursor),
            "endTime": datetime_to_ms(end), "limit": page_size,
        })  # fmt: skip
        pages += 1
        bars = _closed(symbol, interval, rows, cursor, end, now)
        if not bars:
            break
        stored += store_bars(bars, Origin.BINANCE)
        newest = bars[-1].open_time
        if progress is not None:
            progress(stored)
        if len(rows) < page_size:
            break
        cursor = bars[-1].open_time + length
    return Downloaded(stored, pages, started_at, newest)


def _closed(
    symbol: str, interval: str, rows: list, cursor: datetime, end: datetime, now: datetime
) -> list[Bar]:
    bars: list[Bar] = []
    for row in rows:
        try:
            bar = parse_kline(symbol, interval, row)
        except (TypeError, ValueError) as exc:
            raise MarketDataError(
                f"Binance sent a malformed {symbol} kline: {exc}", retryable=False
            ) from exc
        if bar.open_time < cursor or bar.close_time > end or bar.close_time >= now:
            continue
        if bars and bar.open_time <= bars[-1].open_time:
            continue
        bars.append(bar)
    return bars
