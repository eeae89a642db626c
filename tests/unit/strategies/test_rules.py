"""Rule strategies: their signals and their parameters."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from trading.marketdata.klines import load_bundled_bars
from trading.strategies.base import InvalidParameters
from trading.strategies.kinds import build_strategy, validate_parameters
from trading.strategies.rules import SmaCrossover, rsi

BAR = load_bundled_bars("BTCUSDT")[0]


def closes(*values):
    return [replace(BAR, close=Decimal(v)) for v in values]


def test_sma_crossover_buys_on_the_bar_the_fast_average_crosses_above():
    strategy = SmaCrossover(2, 4, Decimal(500), Decimal("0.75"))
    (signal,) = strategy.on_bar(closes(10, 10, 10, 9, 12))
    assert (signal.side, signal.notional, signal.confidence) == ("BUY", 500, Decimal("0.75"))
    assert strategy.on_bar(closes(10, 10, 9, 12, 13)) == []  # above already: no new signal
    (close,) = strategy.on_bar(closes(10, 12, 12, 12, 9))
    assert close.side == "SELL" and close.close_position


def test_rsi_is_cutlers_over_the_closes_given():
    assert rsi([1.0, 2.0, 1.0]) == Decimal(50)
    assert rsi([1.0, 1.0, 1.0]) == Decimal(50)
    assert rsi([3.0, 2.0, 1.0]) == Decimal(0)


@pytest.mark.parametrize(
    ("kind", "parameters"),
    [
        ("sma_crossover", {"fast": 30, "slow": 10}),
        ("sma_crossover", {"fast": "3"}),
        ("sma_crossover", {"speed": 3}),
        ("rsi_mean_reversion", {"oversold": "80", "overbought": "20"}),
        ("rsi_mean_reversion", {"notional": "-5"}),
        ("momentum", {}),
    ],
)
def test_parameters_a_kind_cannot_run_with_are_refused(kind, parameters):
    with pytest.raises(InvalidParameters):
        validate_parameters(kind, parameters, Decimal("0.8"))


def test_a_configuration_builds_its_strategy():
    strategy = build_strategy("rsi_mean_reversion", {"period": 7}, Decimal("0.9"))
    assert strategy.warmup == 9
    assert "period=7" in strategy.version
