"""A strategy's ``on_series`` (a backtest's whole series at once) gives, window for window, what
its ``on_bar`` (the live contract) gives on each window."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading.marketdata.klines import load_bundled_bars
from trading.strategies.ai import AiModel
from trading.strategies.base import windowed_signals
from trading.strategies.rules import RsiMeanReversion, SmaCrossover

BARS = load_bundled_bars("ETHUSDT")[:1500]


def rule_strategies():
    return [
        SmaCrossover(10, 30, Decimal(1000), Decimal("0.8")),
        SmaCrossover(1, 2, Decimal(1000), Decimal("0.8")),
        RsiMeanReversion(14, Decimal(30), Decimal(70), Decimal(1000), Decimal("0.8")),
        RsiMeanReversion(2, Decimal(40), Decimal(60), Decimal(1000), Decimal("0.8")),
    ]


def assert_series_matches_windows(strategy, bars, starts):
    for start in starts:
        expected = windowed_signals(strategy, bars, start)
        assert strategy.on_series(bars, start) == expected, start
    return expected


@pytest.mark.parametrize("strategy", rule_strategies(), ids=lambda s: s.version)
def test_a_rule_strategys_series_gives_each_windows_signals(strategy):
    # From the first bar (no history yet), from inside the warm-up, and with a tail of history.
    starts = (0, 1, strategy.warmup - 1, strategy.warmup, 700)
    expected = assert_series_matches_windows(strategy, BARS, starts)
    assert sum(1 for signals in expected if signals) >= 10


def decisions(signals):
    """The signals less the model's probability, which a batch's BLAS sums may move by a few
    units in the last place (the features, the side and the confidence may not move)."""
    return [
        [(s.symbol, s.side, s.confidence, s.notional, s.close_position, s.details["features"])
         for s in each]
        for each in signals
    ]  # fmt: skip


def test_the_ai_models_series_gives_each_windows_decisions(model_artifact):
    strategy = AiModel(model_artifact, Decimal(100))
    bars = BARS[:700]
    for start in (0, strategy.warmup - 1, 400):
        series = strategy.on_series(bars, start)
        expected = windowed_signals(strategy, bars, start)
        assert decisions(series) == decisions(expected), start
        for got, want in zip(series, expected, strict=True):
            for a, b in zip(got, want, strict=True):
                assert a.details["probability_up"] == pytest.approx(
                    b.details["probability_up"], rel=0, abs=1e-12
                )
    assert sum(1 for signals in expected if signals) > 200


def test_an_sma_series_that_rests_on_a_zero_spread_crosses_as_its_windows_do():
    # Flat closes give a spread of exactly zero: the crossings from and to zero must come out
    # of the series as they do window by window.
    from dataclasses import replace

    levels = [100] * 40 + [101] * 5 + [100] * 40 + [99] * 5 + [99] * 40 + [100] * 10
    bars = [replace(bar, close=Decimal(level)) for bar, level in zip(BARS, levels, strict=False)]
    strategy = SmaCrossover(3, 6, Decimal(1000), Decimal("0.8"))
    expected = assert_series_matches_windows(strategy, bars, (0, 5, 6, 50))
    assert sum(1 for signals in expected if signals) == 2  # from 50: both leave a zero spread
