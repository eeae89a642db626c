"""No lookahead: with the data cut right after each decision point, every shipped strategy
makes the same decision there as with all of it (freqtrade's lookahead analysis), and the ai
model's features of a bar are the same without the bars after it."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from tests.support.backtests import settings
from trading.ai.features import WARMUP_BARS, compute_features
from trading.backtest.engine import Backtest, steps_of
from trading.marketdata.klines import load_bundled_bars
from trading.strategies.ai import AiModel
from trading.strategies.rules import RsiMeanReversion, SmaCrossover

SERIES = {s: load_bundled_bars(s)[:600] for s in ("BTCUSDT", "SOLUSDT")}


def decisions(strategy, cut=None):
    series = [[b for b in bars if cut is None or b.close_time <= cut] for bars in SERIES.values()]
    result = Backtest(strategy, settings()).run(steps_of(series))
    return [(s.ts, s.symbol, s.side, s.confidence, s.status, s.reason) for s in result.signals]


def rule_strategies():
    return [
        SmaCrossover(5, 20, Decimal(1000), Decimal("0.8")),
        RsiMeanReversion(14, Decimal(30), Decimal(70), Decimal(1000), Decimal("0.8")),
    ]


@pytest.mark.parametrize("strategy", rule_strategies(), ids=lambda s: s.kind)
def test_a_rule_strategy_decides_the_same_with_the_future_cut_off(strategy):
    full = decisions(strategy)
    points = sorted({d[0] for d in full})
    assert len(points) >= 5
    for point in points[:: max(1, len(points) // 12)]:
        cut = decisions(strategy, cut=point)
        assert cut == [d for d in full if d[0] <= point], point


def test_the_ai_model_decides_the_same_with_the_future_cut_off(model_artifact):
    strategy = AiModel(model_artifact, Decimal(100))
    full = decisions(strategy)
    points = sorted({d[0] for d in full})
    assert len(points) > 100
    for point in points[:: len(points) // 8]:
        assert decisions(strategy, cut=point) == [d for d in full if d[0] <= point], point


@pytest.mark.parametrize("symbol", list(SERIES))
def test_the_ai_features_of_a_bar_are_the_same_without_the_bars_after_it(symbol):
    bars = SERIES[symbol]
    full = compute_features(bars)
    for end in range(WARMUP_BARS - 1, len(bars), 37):
        np.testing.assert_array_equal(compute_features(bars[: end + 1])[-1], full[end])
