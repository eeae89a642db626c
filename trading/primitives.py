"""Strict readers for the numbers and symbols that people and API clients send.

Python's own readers are lenient in ways a trading desk cannot afford: ``Decimal("1_000")`` is
1000, fullwidth and Arabic-Indic digits read as 20 (``Decimal("\uff12\uff10")``,
``int("\u0662\u0660")``), ``Decimal(" 5 ")`` is 5, and ``"\u017folusdt".upper()`` (a long s) is
``"SOLUSDT"``. Every edge that turns input into a Decimal, a whole number or a symbol (the API's
serializers, the admin's forms, the command line) goes through these instead, so that a value
means exactly what its characters say.

The accepted forms:

- a decimal is a JSON number (``int``, or a ``Decimal`` or ``float`` from the JSON parser), or a
  string of plain notation: an optional sign, ASCII digits, optionally a point and more ASCII
  digits (``12``, ``-0.5``, ``+3.25``). No spaces, underscores, exponents, NaN or infinities, and
  no digits of other scripts. Exponents are refused in strings because a string is what a person
  types and ``1e3`` there is more often a slip than a thousand; a JSON number may carry one,
  since that is how JSON encoders write small and large floats (``1e-07``).
- a whole number is a JSON integer (or a JSON number with no fraction), or a string of an
  optional sign and ASCII digits.
- a symbol is ASCII letters and digits only; lower-case ASCII letters are upper-cased and
  nothing else is changed.

Each reader returns the value or raises ``InvalidInput`` whose message names the value and says
what is wrong with it; the caller adds the field's name.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

# Longer than any amount or symbol anyone trades; bounds the work spent on a hostile value.
MAX_TEXT_LENGTH = 64
# Whole numbers beyond this are not limits, leverages or counts, and would cost memory to expand.
MAX_WHOLE = 10**18
# Numbers are kept between 1E-64 and 1E+64: a JSON number such as 1e999999999 is valid JSON, but
# arithmetic on it overflows the decimal context, and no price or amount comes near either end.
MAX_EXPONENT = 64

_DECIMAL_TEXT = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_WHOLE_TEXT = re.compile(r"[+-]?[0-9]+")
# No re.IGNORECASE: under it [a-z] also matches U+017F (long s) and U+212A (Kelvin sign).
_SYMBOL_TEXT = re.compile(r"[A-Za-z0-9]+")
_NOT_NUMBERS = {"nan", "snan", "inf", "infinity"}


class InvalidInput(ValueError):
    """A value that is not of the form asked for; the message says why."""


def read_decimal(value: object) -> Decimal:
    """Returns the exact Decimal that ``value`` writes, or raises ``InvalidInput``."""
    if isinstance(value, bool):
        raise InvalidInput(f"expected a number, got {str(value).lower()}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal | float):
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if not number.is_finite():
            raise InvalidInput("NaN and infinity are not numbers")
        if number.is_zero():
            return number if abs(number.as_tuple().exponent) <= MAX_EXPONENT else Decimal(0)
        if abs(number.adjusted()) > MAX_EXPONENT:
            raise InvalidInput(f"{value} is out of range (1E-64 to 1E+64)")
        return number
    if not isinstance(value, str):
        raise InvalidInput(f"expected a number, got {_kind(value)}")
    if _DECIMAL_TEXT.fullmatch(value) and len(value) <= MAX_TEXT_LENGTH:
        return Decimal(value)
    raise InvalidInput(f"{_shown(value)} is not a plain decimal number: {_why_not_number(value)}")


def read_whole(value: object) -> int:
    """Returns the integer that ``value`` writes, or raises ``InvalidInput``."""
    if isinstance(value, bool):
        raise InvalidInput(f"expected a whole number, got {str(value).lower()}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, Decimal | float):
        exact = read_decimal(value)
        if abs(exact) > MAX_WHOLE:
            raise InvalidInput(f"{value} is too large")
        if exact != exact.to_integral_value():
            raise InvalidInput(f"expected a whole number, got {value}")
        number = int(exact)
    elif isinstance(value, str):
        if not (_WHOLE_TEXT.fullmatch(value) and len(value) <= MAX_TEXT_LENGTH):
            why = _why_not_number(value)
            if _DECIMAL_TEXT.fullmatch(value):
                why = "expected a whole number"
            raise InvalidInput(f"{_shown(value)} is not a whole number: {why}")
        number = int(value)
    else:
        raise InvalidInput(f"expected a whole number, got {_kind(value)}")
    if abs(number) > MAX_WHOLE:
        raise InvalidInput(f"{number} is too large")
    return number


def read_symbol(value: object) -> str:
    """Returns the symbol in upper case (``btcusdt`` -> ``BTCUSDT``), or raises ``InvalidInput``.
    Whether the exchange lists it is the caller's question."""
    if not isinstance(value, str):
        raise InvalidInput(f"expected a symbol such as BTCUSDT, got {_kind(value)}")
    if not value:
        raise InvalidInput("a symbol is required")
    if len(value) > MAX_TEXT_LENGTH or not _SYMBOL_TEXT.fullmatch(value):
        stray = next((char for char in value if not _SYMBOL_TEXT.fullmatch(char)), None)
        why = f"{_shown(value)} is not a symbol"
        if stray is not None and len(value) <= MAX_TEXT_LENGTH:
            why += f": {stray!r} ({unicodedata.name(stray, 'a control character')}) is not allowed"
        raise InvalidInput(f"{why}; use the ASCII letters A-Z and digits 0-9, such as BTCUSDT")
    return value.upper()


def read_moment(text: str) -> datetime:
    """An ISO 8601 time with its zone (``2025-09-10T00:00Z``, ``...+00:00``); ``InvalidInput``
    otherwise."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidInput(f"{text!r} is not an ISO 8601 time such as 2025-09-10T00:00Z") from None
    if moment.utcoffset() is None:
        raise InvalidInput(f"{text!r} has no time zone: add Z or an offset such as +00:00")
    return moment


def read_symbol_list(value: str) -> list[str]:
    """Reads a comma-separated list of symbols (spaces around the commas are allowed), in
    order and without repeats; an empty text is an empty list."""
    symbols: list[str] = []
    for part in value.split(","):
        if not part.strip():
            continue
        symbol = read_symbol(part.strip())
        if symbol not in symbols:
            symbols.append(symbol)
    return symbols


def _why_not_number(text: str) -> str:
    if not text:
        return "it is empty"
    if len(text) > MAX_TEXT_LENGTH:
        return f"longer than {MAX_TEXT_LENGTH} characters"
    if any(char.isspace() for char in text):
        return "spaces are not allowed"
    if "_" in text:
        return "underscores are not allowed"
    if not text.isascii():
        return "only the ASCII digits 0-9 are allowed"
    if text.lstrip("+-").lower() in _NOT_NUMBERS:
        return "NaN and infinity are not numbers"
    if "e" in text.lower() and _DECIMAL_TEXT.fullmatch(text.lower().split("e")[0] or "x"):
        return "exponents are not allowed; write the number out, such as 1000"
    return "expected digits with an optional sign and decimal point, such as 12.5"


def _shown(text: str) -> str:
    return repr(text if len(text) <= MAX_TEXT_LENGTH else text[:MAX_TEXT_LENGTH] + "...")


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", type(None): "null"}.get(type(value), repr(value))


class OrderStatus(StrEnum):
    """An order's status, as Binance names it, for the exchange adapters and the database."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    # The exchange answered without a status that can be trusted (a timeout, an ACK-only reply,
    # a status this code does not know): the order may still fill, so it is looked up before
    # anything else is done with it.
    UNKNOWN = "UNKNOWN"

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [(member.value, member.value) for member in cls]


# Not final: the exchange may still fill them. UNKNOWN is among them, since it may.
OPEN_ORDER_STATUSES: frozenset[OrderStatus] = frozenset(
    {OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN}
)
FINAL_ORDER_STATUSES: frozenset[OrderStatus] = frozenset(OrderStatus) - OPEN_ORDER_STATUSES
