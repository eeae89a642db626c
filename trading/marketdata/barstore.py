"""The bar store: every closed bar the platform receives, in the database, for retraining.

The feed stores each step's bars where it records them as quotes (``FeedPublisher.publish``), in
one bulk insert that skips bars already held (unique symbol, interval and open time), so a step
published twice is stored once. Bars are kept ``BAR_RETENTION_DAYS`` behind the newest bar of
their symbol: measured on the bars' own clock, so a replay of last year's data keeps its window.

The bundled history seeds the store. A replay is simulated live time: the seed is the bundled bars
before the replay's first played step (``settings.REPLAY_START_DAYS``), the first model learns
from the seed alone, and every later bar enters the store only as the replay plays it. So at any
moment the store holds the past and none of the future, and a retraining reads a window of it
that ends at the latest played bar.

When a looping replay starts a pass over, the bars it is about to play are in the store already,
as played on the pass before. ``restart_simulated_time`` undoes that future: it removes the seed
and the played bars, stores the seed again shifted to the new pass's times (so bar times keep
rising), and retires the model versions trained on played bars, so the first model, which never
saw them, serves again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from trading.marketdata.bars import Bar
from trading.marketdata.klines import BUNDLED_INTERVAL, UnknownSymbolError, load_bundled_bars
from trading.marketdata.replay import replay_start_step
from trading.models import MarketBar, ModelVersion

logger = logging.getLogger(__name__)

Origin = MarketBar.Origin
_BATCH = 2000


def store_bars(bars: Iterable[Bar], origin: str) -> int:
    """Stores these closed bars, skipping those held already; returns how many were offered."""
    rows = [
        MarketBar(
            symbol=bar.symbol,
            interval=bar.interval,
            open_time=bar.open_time,
            close_time=bar.close_time,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            quote_volume=bar.quote_volume,
            trades=bar.trades,
            origin=origin,
        )
        for bar in bars
    ]
    MarketBar.objects.bulk_create(rows, batch_size=_BATCH, ignore_conflicts=True)
    return len(rows)


def purge_expired_bars(retention_days: float | None = None) -> int:
    """Deletes the bars more than ``retention_days`` (default ``BAR_RETENTION_DAYS``) older than
    the newest bar of their symbol and interval; returns how many went."""
    keep = timedelta(days=settings.BAR_RETENTION_DAYS if retention_days is None else retention_days)
    deleted = 0
    newest = MarketBar.objects.values("symbol", "interval").annotate(newest=Max("close_time"))
    for row in newest:
        deleted += MarketBar.objects.filter(
            symbol=row["symbol"], interval=row["interval"], close_time__lte=row["newest"] - keep
        ).delete()[0]
    return deleted


def bar_of(row: MarketBar) -> Bar:
    return Bar(
        symbol=row.symbol,
        interval=row.interval,
        open_time=row.open_time,
        close_time=row.close_time,
        open=row.open,
        high=row.high,
        low=row.low,
        close=row.close,
        volume=row.volume,
        quote_volume=row.quote_volume,
        trades=row.trades,
    )


def stored_bars(
    symbol: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    interval: str | None = None,
) -> list[Bar]:
    """The stored bars of ``symbol`` opening at or after ``start`` and closing at or before
    ``end``, oldest first. With ``limit``: the first ``limit`` of them after ``start``, or
    without ``start`` the last ``limit`` up to ``end``."""
    rows = MarketBar.objects.filter(symbol=symbol, interval=interval or settings.KLINE_INTERVAL)
    if start is not None:
        rows = rows.filter(open_time__gte=start)
    if end is not None:
        rows = rows.filter(close_time__lte=end)
    if limit is None:
        return [bar_of(row) for row in rows.order_by("open_time")]
    if start is None:
        return [bar_of(row) for row in reversed(rows.order_by("-open_time")[:limit])]
    return [bar_of(row) for row in rows.order_by("open_time")[:limit]]


def latest_stored_close(symbols: Sequence[str]) -> datetime | None:
    """The close time of the newest stored bar of these symbols: the latest played bar."""
    return MarketBar.objects.filter(
        symbol__in=list(symbols), interval=settings.KLINE_INTERVAL
    ).aggregate(newest=Max("close_time"))["newest"]


def training_window(symbols: Sequence[str], days: float, end: datetime) -> dict[str, list[Bar]]:
    """Each symbol's stored bars closing in (end - days, end], oldest first; a symbol with none
    is left out."""
    window = {}
    for symbol in symbols:
        rows = MarketBar.objects.filter(
            symbol=symbol,
            interval=settings.KLINE_INTERVAL,
            close_time__gt=end - timedelta(days=days),
            close_time__lte=end,
        ).order_by("open_time")
        bars = [bar_of(row) for row in rows]
        if bars:
            window[symbol] = bars
    return window


def received_bars_after(symbols: Sequence[str], moment: datetime) -> int:
    """How many bars the platform received (not seeded) that close after ``moment``."""
    return (
        MarketBar.objects.filter(symbol__in=list(symbols), close_time__gt=moment)
        .exclude(origin=Origin.SEED)
        .count()
    )


# --- the seed ---------------------------------------------------------------------------------


def replay_start() -> int:
    """The step of the bundled history a fresh replay plays first."""
    return replay_start_step(settings.REPLAY_START_DAYS, BUNDLED_INTERVAL)


def seed_bars(symbols: Sequence[str]) -> list[Bar]:
    """The bundled bars of these symbols before the replay's first played step: what a replay
    (or a live platform, before it has bars of its own) has seen when it starts."""
    start = replay_start()
    bars: list[Bar] = []
    for symbol in symbols:
        try:
            series = load_bundled_bars(symbol)
        except UnknownSymbolError:
            continue
        bars.extend(series[:start])
    return bars


def seed_bar_store(symbols: Sequence[str] | None = None) -> int:
    """Stores the seed once: nothing happens when the store holds bars of these symbols."""
    symbols = list(symbols or settings.SYMBOLS)
    if MarketBar.objects.filter(symbol__in=symbols).exists():
        return 0
    return store_bars(seed_bars(symbols), Origin.SEED)


def seed_end(symbols: Sequence[str]) -> datetime | None:
    """The close time of the last seed bar, as first seeded (unshifted)."""
    bars = seed_bars(symbols)
    return max((bar.close_time for bar in bars), default=None)


def retire_models_past_seed(symbols: Sequence[str], *, now: datetime | None = None) -> int:
    """Retires the versions (champion, earlier ones, challengers) that learnt from bars after the
    seed, which a replay plays: they must not serve on them, nor be judged on them. Returns how
    many it retired."""
    first_seed_end = seed_end(symbols)
    if first_seed_end is None:
        return 0
    return (
        ModelVersion.objects.filter(retired_at__isnull=True)
        .filter(window_end__gt=first_seed_end)
        .update(retired_at=now or timezone.now())
    )


def restart_simulated_time(
    symbols: Sequence[str], seed: Sequence[Bar], *, now: datetime | None = None
) -> int:
    """Starts a replay pass over from its seed (see the module docstring): removes the seed and
    the played bars of these symbols, stores ``seed`` (the pass's seed, as shifted for it), and
    retires the model versions trained on played bars. Returns how many versions it retired;
    when no version trained on the seed alone is left to serve, the caller has one trained."""
    with transaction.atomic():
        MarketBar.objects.filter(
            symbol__in=list(symbols), origin__in=[Origin.SEED, Origin.REPLAY]
        ).delete()
        store_bars(seed, Origin.SEED)
        retired = retire_models_past_seed(symbols, now=now)
    logger.info(
        "replay starts over: the bar store holds the seed again (%d bars up to %s); "
        "%d model version(s) trained on played bars retired",
        len(seed),
        max((bar.close_time for bar in seed), default=None),
        retired,
    )
    return retired
