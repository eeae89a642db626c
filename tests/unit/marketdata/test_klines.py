"""The bundled klines and the Bar they load into (the ``market.bar`` payload)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.marketdata.bars import Bar, parse_kline
from trading.marketdata.klines import (
    BUNDLED_DIR,
    UnknownSymbolError,
    bundled_symbols,
    load_bundled_bars,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
# From data/klines/SOURCE.md: the same 30-day window for all three symbols.
FIRST_OPEN = datetime(2025, 8, 21, 0, 0, tzinfo=UTC)  # 1755734400000
LAST_OPEN = datetime(2025, 9, 19, 23, 55, tzinfo=UTC)  # 1758325800000
FIVE_MINUTES = timedelta(minutes=5)


def test_bundled_symbols_are_btc_eth_and_sol():
    assert bundled_symbols() == SYMBOLS


def test_bundled_files_match_the_checksums_recorded_in_source_md():
    source = (BUNDLED_DIR / "SOURCE.md").read_text()
    recorded = dict(re.findall(r"^\| (\S+\.csv\.gz) \|.*\| ([0-9a-f]{64}) \|$", source, re.M))
    assert len(recorded) == 3
    for name, sha256 in recorded.items():
        assert hashlib.sha256((BUNDLED_DIR / name).read_bytes()).hexdigest() == sha256, name


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_each_symbol_loads_30_days_of_5m_bars_in_the_window_source_md_gives(symbol):
    bars = load_bundled_bars(symbol)
    assert len(bars) == 8640
    assert bars[0].open_time == FIRST_OPEN
    assert bars[-1].open_time == LAST_OPEN
    assert bars[0].open_time == datetime.fromtimestamp(1755734400, UTC)
    assert bars[-1].close_time == datetime(2025, 9, 19, 23, 59, 59, 999000, tzinfo=UTC)
    assert {bar.symbol for bar in bars} == {symbol}
    assert {bar.interval for bar in bars} == {"5m"}


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_bundled_bars_follow_each_other_without_gaps(symbol):
    bars = load_bundled_bars(symbol)
    for before, after in itertools.pairwise(bars):
        assert after.open_time - before.open_time == FIVE_MINUTES
    for bar in bars:
        assert bar.close_time == bar.open_time + FIVE_MINUTES - timedelta(milliseconds=1)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_every_bundled_bar_is_a_consistent_candle(symbol):
    for bar in load_bundled_bars(symbol):
        assert bar.high >= max(bar.open, bar.close), bar
        assert bar.low <= min(bar.open, bar.close), bar
        assert bar.volume > 0 and bar.trades > 0, bar
        assert bar.low <= bar.quote_volume / bar.volume <= bar.high, bar


def test_the_first_btc_bar_carries_the_csv_values_exactly():
    bar = load_bundled_bars("BTCUSDT")[0]
    # 1755734400000,114271.23,114277.56,114162.96,114197.62,27.29614,1755734699999,
    # 3117685.9511101,6096,...
    assert bar == Bar(
        symbol="BTCUSDT",
        interval="5m",
        open_time=FIRST_OPEN,
        close_time=FIRST_OPEN + FIVE_MINUTES - timedelta(milliseconds=1),
        open=Decimal("114271.23"),
        high=Decimal("114277.56"),
        low=Decimal("114162.96"),
        close=Decimal("114197.62"),
        volume=Decimal("27.29614"),
        quote_volume=Decimal("3117685.9511101"),
        trades=6096,
    )
    assert str(bar.quote_volume) == "3117685.9511101"


def test_an_unknown_symbol_is_refused_with_the_symbols_there_are():
    with pytest.raises(UnknownSymbolError) as raised:
        load_bundled_bars("XRPUSDT")
    message = str(raised.value)
    assert "XRPUSDT" in message
    assert "BTCUSDT, ETHUSDT, SOLUSDT" in message


def test_the_file_is_read_once_and_callers_cannot_spoil_the_cache():
    first = load_bundled_bars("ETHUSDT")
    first.clear()
    again = load_bundled_bars("ETHUSDT")
    assert len(again) == 8640
    assert again[0] is load_bundled_bars("ETHUSDT")[0]


# --- Bar and parse_kline ---------------------------------------------------------------------


def test_parse_kline_reads_binance_documented_example():
    (row,) = json.loads((FIXTURES / "klines.doc-example.json").read_text())
    bar = parse_kline("LTCBTC", "1m", row)
    assert bar.open_time == datetime(2017, 7, 3, 0, 0, tzinfo=UTC)  # 1499040000000
    assert bar.close_time == datetime(2017, 7, 9, 23, 59, 59, 999000, tzinfo=UTC)
    assert (bar.open, bar.high, bar.low, bar.close) == (
        Decimal("0.01634790"),
        Decimal("0.80000000"),
        Decimal("0.01575800"),
        Decimal("0.01577100"),
    )
    assert bar.volume == Decimal("148976.11427815")
    assert bar.quote_volume == Decimal("2434.19055334")
    assert bar.trades == 308


@pytest.mark.parametrize(
    "row",
    [
        [1499040000000, "1", "1", "1", "1", "1", 1499040059999, "1", 3, "0", "0"],  # 11 fields
        [1499040000000, "x", "1", "1", "1", "1", 1499040059999, "1", 3, "0", "0", "0"],
        [1499040000000, 1.5, "1", "1", "1", "1", 1499040059999, "1", 3, "0", "0", "0"],  # float
        [1499040000000, "1", "1", "1", "1", "1", 1499040059999, "1", "3.0", "0", "0", "0"],
        [1499040059999, "1", "1", "1", "1", "1", 1499040000000, "1", 3, "0", "0", "0"],
    ],
    ids=["short-row", "bad-price", "float-price", "fractional-trades", "closes-before-open"],
)
def test_parse_kline_refuses_a_malformed_row(row):
    with pytest.raises(ValueError):
        parse_kline("BTCUSDT", "1m", row)


def test_a_bar_payload_is_json_with_decimal_strings_and_iso_times():
    bar = load_bundled_bars("SOLUSDT")[0]
    payload = bar.to_payload()
    assert json.loads(json.dumps(payload)) == payload
    assert payload["open_time"] == "2025-08-21T00:00:00+00:00"
    assert payload["close_time"] == "2025-08-21T00:04:59.999000+00:00"
    assert payload["open"] == str(bar.open) and isinstance(payload["open"], str)
    assert payload["trades"] == bar.trades
    assert Bar.from_payload(json.loads(json.dumps(payload))) == bar


def test_bar_times_are_kept_in_utc_whatever_offset_they_come_with():
    payload = load_bundled_bars("BTCUSDT")[0].to_payload()
    payload["open_time"] = "2025-08-21T02:00:00+02:00"
    bar = Bar.from_payload(payload)
    assert bar.open_time == FIRST_OPEN
    assert bar.open_time.tzinfo is UTC
    assert bar.to_payload()["open_time"] == "2025-08-21T00:00:00+00:00"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("open_time", "2025-08-21T00:00:00"),  # naive
        ("open", 114271.23),  # a float
        ("high", "NaN"),
        ("trades", "many"),
        ("close_time", None),
    ],
)
def test_from_payload_refuses_what_is_not_a_bar(key, value):
    payload = dict(load_bundled_bars("BTCUSDT")[0].to_payload())
    payload[key] = value
    with pytest.raises(ValueError):
        Bar.from_payload(payload)


def test_from_payload_names_a_missing_field():
    payload = dict(load_bundled_bars("BTCUSDT")[0].to_payload())
    del payload["quote_volume"]
    with pytest.raises(ValueError, match="quote_volume"):
        Bar.from_payload(payload)


def test_a_bar_is_immutable():
    bar = load_bundled_bars("BTCUSDT")[0]
    with pytest.raises(AttributeError):
        bar.close = Decimal(0)  # type: ignore[misc]


_decimals = st.decimals(
    allow_nan=False, allow_infinity=False, places=8, min_value=0, max_value=10**9
)
_times = st.datetimes(
    min_value=datetime(2017, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(
    open_time=_times,
    length=st.timedeltas(min_value=timedelta(milliseconds=1), max_value=timedelta(days=7)),
    prices=st.lists(_decimals, min_size=6, max_size=6),
    trades=st.integers(min_value=0, max_value=10**9),
    offset_hours=st.integers(min_value=-12, max_value=14),
)
def test_any_bar_survives_the_json_round_trip(open_time, length, prices, trades, offset_hours):
    bar = Bar(
        "BTCUSDT",
        "5m",
        open_time.astimezone(timezone(timedelta(hours=offset_hours))),
        open_time + length,
        *prices,
        trades=trades,
    )
    back = Bar.from_payload(json.loads(json.dumps(bar.to_payload())))
    assert back == bar
    assert back.to_payload() == bar.to_payload()
