"""The strict readers of numbers and symbols that clients and operators send."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading.primitives import (
    InvalidInput,
    read_decimal,
    read_symbol,
    read_symbol_list,
    read_whole,
)

FULLWIDTH_20 = "\uff12\uff10"
ARABIC_INDIC_20 = "\u0662\u0660"
LONG_S_SOLUSDT = "\u017folusdt"  # a long s, which str.upper() turns into SOLUSDT
KELVIN_KAVAUSDT = "\u212aAVAUSDT"  # Kelvin sign, which re.IGNORECASE takes for a K


@pytest.mark.parametrize(
    ("text", "value"),
    [("20", "20"), ("-0.5", "-0.5"), ("+3.25", "3.25"), ("0.00000001", "0.00000001"),
     ("100.000", "100.000")],
)  # fmt: skip
def test_it_reads_plain_decimal_text_exactly(text, value):
    assert read_decimal(text) == Decimal(value)
    assert str(read_decimal(text)) == str(Decimal(value))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1_000", "underscores"),
        (FULLWIDTH_20, "ASCII digits"),
        (ARABIC_INDIC_20, "ASCII digits"),
        (" 20", "spaces"),
        ("20\n", "spaces"),
        ("1e3", "exponents"),
        ("NaN", "NaN"),
        ("-Infinity", "NaN and infinity"),
        ("", "empty"),
        ("0x10", "such as 12.5"),
        (".5", "such as 12.5"),
        ("1" * 65, "longer than 64"),
    ],
)
def test_it_refuses_anything_but_plain_decimal_text_saying_why(text, reason):
    with pytest.raises(InvalidInput, match="not a plain decimal number") as error:
        read_decimal(text)
    assert reason in str(error.value)


def test_it_takes_json_numbers_including_exponents_but_not_nan_or_booleans():
    assert read_decimal(7) == 7
    assert read_decimal(Decimal("1E-7")) == Decimal("0.0000001")
    assert read_decimal(0.1) == Decimal("0.1")  # the float's shortest form, not its expansion
    for bad in (Decimal("NaN"), float("inf"), True, None, [1], {"a": 1}):
        with pytest.raises(InvalidInput):
            read_decimal(bad)


def test_it_reads_whole_numbers_strictly():
    assert read_whole("12") == 12
    assert read_whole(-3) == -3
    assert read_whole(Decimal("2.0")) == 2
    for bad in ("2.5", Decimal("2.5"), "1_0", FULLWIDTH_20, " 3", True, "1e3", 10**19,
                Decimal("1E+999999999")):  # fmt: skip
        with pytest.raises(InvalidInput):
            read_whole(bad)


def test_it_upper_cases_ascii_symbols_and_nothing_else():
    assert read_symbol("solusdt") == "SOLUSDT"
    assert read_symbol("1000SATSUSDT") == "1000SATSUSDT"
    for bad in (LONG_S_SOLUSDT, KELVIN_KAVAUSDT, " BTCUSDT", "BTC-USDT", "", 5, None):
        with pytest.raises(InvalidInput):
            read_symbol(bad)


def test_a_refused_symbol_names_the_character_at_fault():
    with pytest.raises(InvalidInput) as error:
        read_symbol(LONG_S_SOLUSDT)
    assert "LATIN SMALL LETTER LONG S" in str(error.value)


def test_it_reads_a_symbol_list_once_each_in_order():
    assert read_symbol_list("btcusdt, ETHUSDT,,BTCUSDT ") == ["BTCUSDT", "ETHUSDT"]
    assert read_symbol_list("") == []
    with pytest.raises(InvalidInput):
        read_symbol_list(f"BTCUSDT,{LONG_S_SOLUSDT}")


def test_json_numbers_far_out_of_range_are_refused_before_any_arithmetic():
    for extreme in (Decimal("1E+999999999"), Decimal("-1E-999999999"), Decimal("1E+65")):
        with pytest.raises(InvalidInput, match="out of range"):
            read_decimal(extreme)
    assert read_decimal(Decimal("0E-999999999")) == 0


def test_a_moment_is_an_iso_time_with_its_zone():
    from datetime import UTC, datetime

    from trading.primitives import read_moment

    assert read_moment("2025-09-10T00:00Z") == datetime(2025, 9, 10, tzinfo=UTC)
    assert read_moment("2025-09-10T02:00:00+02:00") == datetime(2025, 9, 10, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="no time zone"):
        read_moment("2025-09-10T00:00")
    with pytest.raises(InvalidInput, match="not an ISO 8601 time"):
        read_moment("yesterday")
