"""Features of one symbol's bars: the single code path for training and live inference.

``compute_features(bars)`` gives one row per bar; ``latest_features(bars)`` gives the row of the
last bar, which is what the live signal uses. Both run the same code, and every row is a function
of the ``WARMUP_BARS`` bars ending at it and of nothing else: no later bar (no look-ahead) and no
earlier one. That second property is why the smoothing below is of finite length: with a textbook,
infinitely-remembering EMA the live value would depend on how long the worker's bar buffer happens
to be, and drift away from the value the model was trained on. Here a live buffer of any length of
at least ``WARMUP_BARS`` bars gives, bit for bit, the row training saw for that bar.

The features (columns, in ``FEATURE_NAMES`` order); every one is scale-free, so one model serves
symbols of any price:

``log_return_1``, ``log_return_3``, ``log_return_12``, ``log_return_48``
    ln(close_t / close_t-k): momentum over 5 minutes, 15 minutes, 1 hour and 4 hours of 5m bars.
``rsi_14``
    Relative strength index over the last 14 close-to-close changes, 0..100 (50 when the price did
    not move). Cutler's form: the simple mean of gains and of losses rather than Wilder's recursive
    smoothing, so that it depends on the last 15 closes only.
``macd_line``
    (EMA12 - EMA26 of the close) / close: the trend as a share of the price.
``macd_histogram``
    (MACD line - its EMA9) / close: the trend's acceleration.
``bollinger_pct_b``
    (close - lower band) / (upper - lower) with bands at the 20-bar mean +- 2 population standard
    deviations: 0 at the lower band, 1 at the upper, 0.5 when the 20 closes are all equal.
``realised_vol_24``
    Sample standard deviation of the last 24 one-bar log returns (per bar, not annualised).
``atr_14_pct``
    Mean true range of the last 14 bars / close (simple mean, as RSI; true range uses the previous
    close, so it needs 15 bars).
``volume_z_48``
    (volume - mean) / population std of the last 48 bars' base-asset volume, this bar included; 0
    when the volume did not vary.

The EMAs of the MACD are truncated to the last N values with their weights renormalised, where N is
the smallest length that leaves out less than 0.1% of the infinite EMA's weight (42 bars for the
12-bar EMA, 90 for the 26, 31 for the 9). The signal line, an EMA of an EMA, is the longest chain:
``WARMUP_BARS`` = 90 + 31 - 1 = 120 bars (10 hours of 5m bars).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from trading.marketdata.bars import Bar

FEATURE_NAMES: tuple[str, ...] = (
    "log_return_1",
    "log_return_3",
    "log_return_12",
    "log_return_48",
    "rsi_14",
    "macd_line",
    "macd_histogram",
    "bollinger_pct_b",
    "realised_vol_24",
    "atr_14_pct",
    "volume_z_48",
)

RETURN_LAGS = (1, 3, 12, 48)
RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BOLLINGER_PERIOD, BOLLINGER_WIDTH = 20, 2.0
VOLATILITY_PERIOD = 24
ATR_PERIOD = 14
VOLUME_PERIOD = 48
# The share of an infinite EMA's weight a truncated one may leave out.
EMA_TAIL_WEIGHT = 1e-3


def ema_window(span: int) -> int:
    """Bars a truncated EMA of ``span`` uses: the fewest that carry all but EMA_TAIL_WEIGHT."""
    decay = 1.0 - 2.0 / (span + 1)
    return math.ceil(math.log(EMA_TAIL_WEIGHT) / math.log(decay))


# Bars needed before each feature is defined; a feature needing k bars is NaN on rows 0..k-2.
_BARS_NEEDED = {
    **{f"log_return_{lag}": lag + 1 for lag in RETURN_LAGS},
    "rsi_14": RSI_PERIOD + 1,
    "macd_line": ema_window(MACD_SLOW),
    "macd_histogram": ema_window(MACD_SLOW) + ema_window(MACD_SIGNAL) - 1,
    "bollinger_pct_b": BOLLINGER_PERIOD,
    "realised_vol_24": VOLATILITY_PERIOD + 1,
    "atr_14_pct": ATR_PERIOD + 1,
    "volume_z_48": VOLUME_PERIOD,
}
assert tuple(_BARS_NEEDED) == FEATURE_NAMES

WARMUP_BARS: int = max(_BARS_NEEDED.values())
"""Bars of history a row needs for every feature to be defined (rows before are partly NaN)."""


def compute_features(bars: Sequence[Bar]) -> np.ndarray:
    """The feature matrix of one symbol's consecutive bars, oldest first.

    Returns a float64 array of shape ``(len(bars), len(FEATURE_NAMES))``; row i describes the market
    as it stood when bar i closed, and a feature lacking the history it needs is NaN (every row
    from ``WARMUP_BARS - 1`` on is complete). Raises ValueError when the bars mix symbols or
    intervals or are not in time order.
    """
    _check_series(bars)
    n = len(bars)
    out = np.full((n, len(FEATURE_NAMES)), np.nan)
    if n == 0:
        return out
    close = _column(bars, "close")
    high = _column(bars, "high")
    low = _column(bars, "low")
    volume = _column(bars, "volume")

    with np.errstate(invalid="ignore", divide="ignore"):
        log_close = np.log(close)
        column = 0
        for lag in RETURN_LAGS:
            out[:, column] = _lagged_difference(log_close, lag)
            column += 1
        out[:, column] = _rsi(close, RSI_PERIOD)
        macd = _truncated_ema(close, MACD_FAST) - _truncated_ema(close, MACD_SLOW)
        out[:, column + 1] = macd / close
        out[:, column + 2] = (macd - _truncated_ema(macd, MACD_SIGNAL)) / close
        out[:, column + 3] = _bollinger_pct_b(close, BOLLINGER_PERIOD, BOLLINGER_WIDTH)
        one_bar = _lagged_difference(log_close, 1)
        out[:, column + 4] = _rolling(one_bar, VOLATILITY_PERIOD, lambda w: w.std(axis=1, ddof=1))
        out[:, column + 5] = _rolling(_true_range(high, low, close), ATR_PERIOD, _mean) / close
        out[:, column + 6] = _zscore(volume, VOLUME_PERIOD)
    return out


def latest_features(bars: Sequence[Bar]) -> np.ndarray:
    """The feature row of the last bar, as live inference uses it: ``compute_features(bars)[-1]``.

    Only the last ``WARMUP_BARS`` bars are read, since nothing earlier can change the row. Returns
    a 1-D array of ``len(FEATURE_NAMES)`` values, NaN where the history is too short; raises
    ValueError when there are no bars.
    """
    if not bars:
        raise ValueError("no bars to compute features from")
    return compute_features(bars[-WARMUP_BARS:])[-1]


# -- building blocks -------------------------------------------------------------------------------
# Each value is computed from its own window of inputs (a row of a sliding-window view, reduced
# along that row). Cumulative sums would be faster but carry the rounding of everything before the
# window, which would break the bit-for-bit equality of training and live rows.


def _check_series(bars: Sequence[Bar]) -> None:
    if not bars:
        return
    first = bars[0]
    previous = None
    for bar in bars:
        if bar.symbol != first.symbol or bar.interval != first.interval:
            raise ValueError(
                f"features are computed per series: {first.symbol} {first.interval} "
                f"bars mixed with {bar.symbol} {bar.interval}"
            )
        if previous is not None and bar.open_time <= previous.open_time:
            raise ValueError(f"{bar.symbol} bars out of time order at {bar.open_time.isoformat()}")
        previous = bar


def _column(bars: Sequence[Bar], field: str) -> np.ndarray:
    return np.fromiter((float(getattr(bar, field)) for bar in bars), dtype=float, count=len(bars))


def _lagged_difference(values: np.ndarray, lag: int) -> np.ndarray:
    out = np.full_like(values, np.nan)
    if lag < len(values):
        out[lag:] = values[lag:] - values[:-lag]
    return out


def _mean(windows: np.ndarray) -> np.ndarray:
    return windows.mean(axis=1)


def _rolling(values: np.ndarray, window: int, reduce) -> np.ndarray:
    """reduce() of each trailing window of ``window`` values, aligned to the window's last value."""
    out = np.full_like(values, np.nan)
    if len(values) >= window:
        # A contiguous copy, so every row is reduced with the same summation order.
        windows = np.ascontiguousarray(sliding_window_view(values, window))
        out[window - 1 :] = reduce(windows)
    return out


def _truncated_ema(values: np.ndarray, span: int) -> np.ndarray:
    window = ema_window(span)
    decay = 1.0 - 2.0 / (span + 1)
    weights = decay ** np.arange(window - 1, -1, -1, dtype=float)  # oldest value first
    weights /= weights.sum()
    return _rolling(values, window, lambda w: (w * weights).sum(axis=1))


def _rsi(close: np.ndarray, period: int) -> np.ndarray:
    change = _lagged_difference(close, 1)
    gain = _rolling(np.maximum(change, 0.0), period, _mean)
    loss = _rolling(np.maximum(-change, 0.0), period, _mean)
    moved = gain + loss
    # A window without any change is neither overbought nor oversold.
    return np.where(moved > 0, 100.0 * gain / moved, np.where(np.isnan(moved), np.nan, 50.0))


def _bollinger_pct_b(close: np.ndarray, period: int, width: float) -> np.ndarray:
    mean = _rolling(close, period, _mean)
    std = _rolling(close, period, lambda w: w.std(axis=1))
    lower = mean - width * std
    band = 2.0 * width * std
    return np.where(band > 0, (close - lower) / band, np.where(np.isnan(band), np.nan, 0.5))


def _true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    previous = np.full_like(close, np.nan)
    previous[1:] = close[:-1]
    # np.maximum propagates the NaN of the first bar, which has no previous close.
    return np.maximum(high - low, np.maximum(np.abs(high - previous), np.abs(low - previous)))


def _zscore(values: np.ndarray, period: int) -> np.ndarray:
    mean = _rolling(values, period, _mean)
    std = _rolling(values, period, lambda w: w.std(axis=1))
    return np.where(std > 0, (values - mean) / std, np.where(np.isnan(std), np.nan, 0.0))
