"""The feature study's candidate sets: what each adds, on the bundled bars."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trading.ai.features import FEATURE_NAMES
from trading.ai.study import FEATURE_SETS, build_rows, cross_asset, multi_timeframe
from trading.marketdata.bars import datetime_to_ms
from trading.marketdata.klines import load_bundled_bars

SETS = {s.name: s for s in FEATURE_SETS}


@pytest.fixture(scope="module")
def bars():
    return {s: load_bundled_bars(s)[:700] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")}


def test_cross_asset_columns_are_the_leaders_returns_at_the_same_close_time(bars):
    eth = cross_asset("ETHUSDT", bars["ETHUSDT"], bars)
    btc = bars["BTCUSDT"]
    at = {datetime_to_ms(b.close_time): i for i, b in enumerate(btc)}
    for i in (100, 400, 699):
        j = at[datetime_to_ms(bars["ETHUSDT"][i].close_time)]
        assert eth[i, 0] == pytest.approx(math.log(float(btc[j].close) / float(btc[j - 1].close)))
        assert eth[i, 2] == pytest.approx(math.log(float(btc[j].close) / float(btc[j - 12].close)))


def test_multi_timeframe_needs_a_day_of_history(bars):
    columns = multi_timeframe("BTCUSDT", bars["BTCUSDT"], bars)
    assert np.isnan(columns[287]).any() and np.isfinite(columns[300]).all()
    rsi = columns[:, 2]
    assert np.nanmin(rsi) >= 0 and np.nanmax(rsi) <= 100


def test_the_volatility_scaled_label_keeps_only_moves_beyond_half_the_expected_move(bars):
    base = build_rows(SETS["base"], bars)
    scaled = build_rows(SETS["vol_scaled_label"], bars)
    assert 0 < len(scaled.labels) < len(base.labels)
    vol = scaled.features[:, FEATURE_NAMES.index("realised_vol_24")]
    by_time = {datetime_to_ms(b.close_time): i for i, b in enumerate(bars["BTCUSDT"])}
    close = [float(b.close) for b in bars["BTCUSDT"]]
    for row in np.flatnonzero(scaled.symbols == "BTCUSDT")[:50]:
        i = by_time[int(scaled.close_ms[row])]
        move = math.log(close[i + 12] / close[i])
        assert abs(move) >= 0.5 * vol[row] * math.sqrt(12) - 1e-12
        assert scaled.labels[row] == int(move > 0)
