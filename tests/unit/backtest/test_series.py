"""A strategy's ``on_series`` in the engine: the same signals, orders and fills as its ``on_bar``
on each window, chunk boundaries and a ``trade_from`` included."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from tests.support.backtests import settings
from trading.backtest import engine
from trading.backtest.engine import Backtest, steps_of
from trading.marketdata.klines import load_bundled_bars
from trading.strategies.rules import RsiMeanReversion, SmaCrossover

SERIES = [load_bundled_bars(s)[:900] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]


@dataclass(frozen=True)
class WindowsOnly:
    """The strategy seen through ``on_bar`` alone, as live trading sees it."""

    inner: object

    kind = property(lambda self: self.inner.kind)
    warmup = property(lambda self: self.inner.warmup)
    version = property(lambda self: self.inner.version)

    def on_bar(self, window):
        return self.inner.on_bar(window)


def outcome(strategy, **overrides):
    result = Backtest(strategy, settings(**overrides)).run(steps_of(SERIES))
    return (result.signals, result.orders, result.fills, result.equity_curve, result.hits)


@pytest.mark.parametrize(
    "strategy",
    [
        SmaCrossover(5, 20, Decimal(1000), Decimal("0.8")),
        RsiMeanReversion(14, Decimal(30), Decimal(70), Decimal(1000), Decimal("0.8")),
    ],
    ids=lambda s: s.kind,
)
@pytest.mark.parametrize("chunk", [7, 1024])
def test_signals_worked_out_ahead_trade_as_the_windows_do(monkeypatch, strategy, chunk):
    monkeypatch.setattr(engine, "SERIES_CHUNK_STEPS", chunk)
    trade_from = SERIES[0][333].close_time
    for overrides in ({}, {"trade_from": trade_from}):
        ahead = outcome(strategy, **overrides)
        assert ahead == outcome(WindowsOnly(strategy), **overrides)
        assert len(ahead[2]) >= 20  # fills
