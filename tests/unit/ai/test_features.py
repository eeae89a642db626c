"""Features from bars: one code path for training and live inference, no look-ahead."""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from trading.ai.features import (
    FEATURE_NAMES,
    WARMUP_BARS,
    compute_features,
    latest_features,
)
from trading.marketdata.bars import Bar
from trading.marketdata.klines import load_bundled_bars

T0 = datetime(2025, 9, 1, tzinfo=UTC)
FIVE_MINUTES = timedelta(minutes=5)
COLUMN = {name: index for index, name in enumerate(FEATURE_NAMES)}


def bars_from(
    closes: list[float],
    *,
    highs: list[float] | None = None,
    lows: list[float] | None = None,
    volumes: list[float] | None = None,
    symbol: str = "BTCUSDT",
) -> list[Bar]:
    """Consecutive 5m bars with the given closes; high and low equal the close unless given."""
    bars = []
    for i, close in enumerate(closes):
        bars.append(
            Bar(
                symbol=symbol,
                interval="5m",
                open_time=T0 + i * FIVE_MINUTES,
                close_time=T0 + (i + 1) * FIVE_MINUTES - timedelta(milliseconds=1),
                open=Decimal(str(close)),
                high=Decimal(str(highs[i] if highs else close)),
                low=Decimal(str(lows[i] if lows else close)),
                close=Decimal(str(close)),
                volume=Decimal(str(volumes[i] if volumes else 10)),
                quote_volume=Decimal(0),
                trades=1,
            )
        )
    return bars


def feature(rows: np.ndarray, name: str) -> np.ndarray:
    return rows[..., COLUMN[name]]


@pytest.fixture(scope="module")
def btc() -> list[Bar]:
    return load_bundled_bars("BTCUSDT")


@pytest.fixture(scope="module")
def btc_features(btc) -> np.ndarray:
    return compute_features(btc)


# -- one code path, no look-ahead ------------------------------------------------------------------

CUTS = [WARMUP_BARS, WARMUP_BARS + 1, 500, 1234, 4321, 8639]


@pytest.mark.parametrize("cut", CUTS)
def test_live_features_equal_the_training_row_of_the_same_bar_exactly(btc, btc_features, cut):
    live = latest_features(btc[:cut])
    assert np.array_equal(live, compute_features(btc[:cut])[-1])
    assert np.array_equal(live, btc_features[cut - 1])  # the row training saw for that bar
    assert np.isfinite(live).all()


@pytest.mark.parametrize("cut", CUTS)
def test_feature_rows_do_not_change_when_later_bars_arrive(btc, btc_features, cut):
    assert np.array_equal(compute_features(btc[:cut]), btc_features[:cut], equal_nan=True)


@pytest.mark.parametrize("dropped", [1, 77, 3000])
def test_a_row_depends_only_on_the_last_warmup_bars_so_any_live_buffer_gives_the_same_row(
    btc, btc_features, dropped
):
    # A live worker keeps a buffer of recent bars, shorter than the training history.
    shorter = compute_features(btc[dropped:])
    assert np.array_equal(shorter[WARMUP_BARS - 1 :], btc_features[dropped + WARMUP_BARS - 1 :])


def test_a_row_does_not_see_its_own_future_when_later_prices_change(btc):
    bars = btc[:400]
    doubled_later = bars[:300] + [
        dataclasses.replace(bar, close=bar.close * 2, high=bar.high * 2) for bar in bars[300:]
    ]
    original, changed = compute_features(bars), compute_features(doubled_later)
    assert np.array_equal(changed[:300], original[:300], equal_nan=True)
    assert not np.array_equal(changed[300:], original[300:])


# -- warm-up ---------------------------------------------------------------------------------------


def test_every_feature_is_nan_until_it_has_the_history_it_needs(btc):
    rows = compute_features(btc[:WARMUP_BARS])
    first_defined = {
        "log_return_1": 1,
        "log_return_3": 3,
        "log_return_12": 12,
        "log_return_48": 48,
        "rsi_14": 14,
        "macd_line": 89,  # a 26-bar EMA truncated to 90 bars
        "macd_histogram": 119,  # then a 9-bar EMA of it, truncated to 31 values
        "bollinger_pct_b": 19,
        "realised_vol_24": 24,
        "atr_14_pct": 14,
        "volume_z_48": 47,
    }
    assert set(first_defined) == set(FEATURE_NAMES)
    for name, first in first_defined.items():
        values = feature(rows, name)
        assert np.isnan(values[:first]).all(), name
        assert np.isfinite(values[first:]).all(), name


def test_warmup_is_ten_hours_of_five_minute_bars(btc):
    assert WARMUP_BARS == 120
    assert np.isfinite(latest_features(btc[:WARMUP_BARS])).all()
    assert np.isnan(latest_features(btc[: WARMUP_BARS - 1])).any()


def test_latest_features_of_a_short_history_has_nans_for_what_is_not_defined_yet():
    row = latest_features(bars_from([100.0, 101.0, 102.0, 103.0]))
    assert feature(row, "log_return_3") == pytest.approx(math.log(103 / 100))
    assert np.isnan(feature(row, "log_return_12"))
    assert np.isnan(feature(row, "rsi_14"))


def test_there_are_no_features_of_no_bars():
    assert compute_features([]).shape == (0, len(FEATURE_NAMES))
    with pytest.raises(ValueError, match="no bars"):
        latest_features([])


# -- hand-checked values ---------------------------------------------------------------------------


def test_log_returns_are_the_log_of_the_price_ratio_over_each_window():
    closes = [100.0, 110.0, 99.0, 120.0, 96.0]
    rows = compute_features(bars_from(closes))
    assert feature(rows, "log_return_1")[1] == pytest.approx(math.log(1.1))  # +10%
    assert feature(rows, "log_return_1")[2] == pytest.approx(math.log(0.9))  # -10%
    assert feature(rows, "log_return_3")[3] == pytest.approx(math.log(1.2))
    assert feature(rows, "log_return_3")[4] == pytest.approx(math.log(96 / 110))


def test_long_window_returns_add_up_the_one_bar_returns():
    closes = [100 * 1.01**i for i in range(60)]  # +1% every bar
    rows = compute_features(bars_from(closes))
    assert feature(rows, "log_return_12")[12] == pytest.approx(12 * math.log(1.01))
    assert feature(rows, "log_return_48")[59] == pytest.approx(48 * math.log(1.01))


def test_rsi_is_the_share_of_gains_in_the_last_14_moves():
    # 14 moves: +2, -1 seven times. Gains 14, losses 7: RSI = 100 * 14 / 21.
    closes = [100.0]
    for move in [2, -1] * 7:
        closes.append(closes[-1] + move)
    rsi = feature(compute_features(bars_from(closes)), "rsi_14")
    assert np.isnan(rsi[13])
    assert rsi[14] == pytest.approx(200 / 3)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(1.0, 100.0), (-1.0, 0.0), (0.0, 50.0)],
    ids=["rising", "falling", "flat"],
)
def test_rsi_is_100_in_a_steady_rise_0_in_a_steady_fall_and_50_when_flat(step, expected):
    rsi = feature(compute_features(bars_from([100 + step * i for i in range(20)])), "rsi_14")
    assert rsi[-1] == pytest.approx(expected)


def test_rsi_forgets_moves_older_than_14_bars():
    closes = [100.0, 50.0] + [50.0 + i for i in range(1, 15)]  # a crash, then 14 rises
    rsi = feature(compute_features(bars_from(closes)), "rsi_14")
    assert rsi[14] < 50  # the crash is among the last 14 moves
    assert rsi[15] == pytest.approx(100.0)  # and now it is not


def test_bollinger_pct_b_places_the_close_between_the_bands():
    # Closes alternate 99, 101: mean 100, population std 1, bands at 98 and 102.
    closes = [99.0, 101.0] * 10 + [99.0]
    pct_b = feature(compute_features(bars_from(closes)), "bollinger_pct_b")
    assert np.isnan(pct_b[18])
    assert pct_b[19] == pytest.approx((101 - 98) / 4)
    assert pct_b[20] == pytest.approx((99 - 98) / 4)  # the same bands one bar on
    assert feature(compute_features(bars_from([5.0] * 20)), "bollinger_pct_b")[19] == 0.5


def test_atr_is_the_mean_true_range_as_a_share_of_the_close():
    closes = [200.0] * 20
    rows = compute_features(bars_from(closes, highs=[201.0] * 20, lows=[199.0] * 20))
    assert feature(rows, "atr_14_pct")[19] == pytest.approx(2 / 200)
    # A gap up counts from the previous close: true range = 250 - 200 = 50.
    gapped = bars_from([*closes, 250.0], highs=[201.0] * 20 + [250.0], lows=[199.0] * 20 + [249.0])
    assert feature(compute_features(gapped), "atr_14_pct")[20] == pytest.approx(
        (13 * 2 + 50) / 14 / 250
    )


def test_volume_z_score_measures_the_last_volume_against_the_last_48():
    # 47 bars of 10 and one of 58: mean 11, population variance (47 * 1 + 47**2) / 48 = 47, so
    # z = (58 - 11) / sqrt(47) = sqrt(47).
    volumes = [10.0] * 47 + [58.0]
    z = feature(compute_features(bars_from([100.0] * 48, volumes=volumes)), "volume_z_48")
    assert np.isnan(z[46])
    assert z[47] == pytest.approx(math.sqrt(47))
    assert feature(compute_features(bars_from([100.0] * 48)), "volume_z_48")[47] == 0.0


def test_macd_of_a_steady_rise_is_the_lag_between_the_two_emas_and_its_histogram_is_zero():
    # On a straight line an EMA of span s lags (s - 1) / 2 bars behind: 5.5 and 12.5 bars, so
    # the MACD line is 7 price units, constant, and the histogram (MACD minus its EMA) is 0.
    closes = [1000.0 + i for i in range(200)]
    rows = compute_features(bars_from(closes))
    macd_price_units = feature(rows, "macd_line")[-1] * closes[-1]
    assert macd_price_units == pytest.approx(7.0, abs=0.1)  # the truncation shortens the lag a bit
    assert feature(rows, "macd_histogram")[-1] == pytest.approx(0.0, abs=1e-9)


def test_realised_volatility_is_the_sample_std_of_the_last_24_one_bar_log_returns():
    closes = [100.0]
    for i in range(30):
        closes.append(closes[-1] * (1.01 if i % 3 else 0.98))
    returns = [math.log(b / a) for a, b in itertools.pairwise(closes)][-24:]
    mean = sum(returns) / 24
    expected = math.sqrt(sum((r - mean) ** 2 for r in returns) / 23)
    vol = feature(compute_features(bars_from(closes)), "realised_vol_24")
    assert vol[-1] == pytest.approx(expected)


# -- one series at a time --------------------------------------------------------------------------


def test_it_refuses_to_mix_symbols_in_one_series():
    mixed = bars_from([1.0, 2.0]) + bars_from([3.0], symbol="ETHUSDT")
    with pytest.raises(ValueError, match="per series"):
        compute_features(mixed)


def test_it_refuses_bars_out_of_time_order():
    bars = bars_from([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="out of time order"):
        compute_features([bars[0], bars[2], bars[1]])
