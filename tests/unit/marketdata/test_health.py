"""Market data freshness: a quote is stale after three bar intervals of the feed, never less
than MIN_STALE_SECONDS."""

from __future__ import annotations

import pytest

from trading.marketdata.bars import Bar
from trading.marketdata.health import MIN_STALE_SECONDS, judge_market_data, stale_after_seconds
from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.prices import Quote
from trading.observability.health import Status

SYMBOLS = ("BTCUSDT", "ETHUSDT")
NOW = 1_760_000_000.0


def quotes(**ages: float) -> dict[str, Quote]:
    bars: dict[str, Bar] = {s: load_bundled_bars(s)[0] for s in ages}
    return {symbol: Quote(bars[symbol], NOW - age) for symbol, age in ages.items()}


def test_the_limit_is_three_bar_intervals():
    assert stale_after_seconds(300) == 900  # live 5-minute klines
    assert stale_after_seconds(20) == 60


@pytest.mark.parametrize("bar_seconds", [0, 0.5, 1])
def test_a_fast_replay_gets_the_floor_so_a_short_pause_does_not_flap(bar_seconds):
    assert stale_after_seconds(bar_seconds) == MIN_STALE_SECONDS


def test_it_passes_when_every_quote_is_within_three_intervals():
    check = judge_market_data(
        quotes(BTCUSDT=5, ETHUSDT=59), SYMBOLS, bar_seconds=20, now=NOW, critical=True
    )
    assert check.status is Status.PASS
    assert check.observed["stale_after_seconds"] == 60


def test_a_quote_older_than_three_intervals_fails_a_critical_check():
    # The feed replays a bar a second and stopped 107 s ago: ai is not ready.
    check = judge_market_data(
        quotes(BTCUSDT=107, ETHUSDT=1), SYMBOLS, bar_seconds=1, now=NOW, critical=True
    )
    assert check.status is Status.FAIL and check.critical
    assert check.output == "BTCUSDT: stale (107 s old, limit 10 s)"


def test_a_stale_quote_only_warns_when_the_check_is_not_critical():
    check = judge_market_data(
        quotes(BTCUSDT=901, ETHUSDT=1), SYMBOLS, bar_seconds=300, now=NOW, critical=False
    )
    assert check.status is Status.WARN and not check.critical


def test_a_symbol_without_a_quote_fails():
    check = judge_market_data(quotes(BTCUSDT=1), SYMBOLS, bar_seconds=1, now=NOW, critical=True)
    assert check.status is Status.FAIL
    assert check.output == "ETHUSDT: no bars"
