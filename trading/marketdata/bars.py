"""One closed candlestick bar, the payload of the ``market.bar`` event.

Prices and volumes are Decimals because they are what Binance sends (decimal strings) and what the
risk checks compare against tick and step sizes, where a float's binary rounding would creep in.
Times are aware UTC datetimes; ``close_time`` is Binance's, one millisecond before the next bar
opens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TypedDict

# Binance's kline intervals of fixed length. "1M" (a calendar month) is left out on purpose: its
# length varies, and nothing here needs it.
INTERVALS: dict[str, timedelta] = {
    "1s": timedelta(seconds=1),
    "1m": timedelta(minutes=1),
    "3m": timedelta(minutes=3),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "4h": timedelta(hours=4),
    "6h": timedelta(hours=6),
    "8h": timedelta(hours=8),
    "12h": timedelta(hours=12),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
    "1w": timedelta(weeks=1),
}

KLINE_FIELDS = 12
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRICE_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")


def interval_length(interval: str) -> timedelta:
    """The length of a Binance kline interval such as "5m"; raises ValueError for an unknown one."""
    try:
        return INTERVALS[interval]
    except KeyError:
        known = ", ".join(INTERVALS)
        raise ValueError(
            f"unsupported kline interval {interval!r}; expected one of {known}"
        ) from None


def datetime_from_ms(ms: int) -> datetime:
    """Binance's integer milliseconds since the epoch as an aware UTC datetime, exactly."""
    return _EPOCH + timedelta(milliseconds=ms)


def datetime_to_ms(moment: datetime) -> int:
    """An aware datetime as Binance's integer milliseconds since the epoch (sub-ms truncated)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


class BarPayload(TypedDict):
    """The JSON shape of a bar, shared by the feed that publishes it and everyone who reads it."""

    symbol: str
    interval: str
    open_time: str  # ISO 8601 with offset, e.g. "2025-08-21T00:00:00+00:00"
    close_time: str
    open: str  # decimal strings, never floats
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trades: int


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    interval: str
    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int

    def __post_init__(self) -> None:
        for name in ("open_time", "close_time"):
            moment = getattr(self, name)
            if not isinstance(moment, datetime) or moment.utcoffset() is None:
                raise ValueError(f"Bar.{name} must be an aware datetime, got {moment!r}")
            if moment.tzinfo is not UTC:
                # Stored in UTC whatever offset it came with, so payloads and comparisons agree.
                object.__setattr__(self, name, moment.astimezone(UTC))
        if self.close_time <= self.open_time:
            raise ValueError(f"Bar closes ({self.close_time}) before it opens ({self.open_time})")
        for name in _PRICE_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite():
                raise ValueError(f"Bar.{name} must be a finite Decimal, got {value!r}")
        if isinstance(self.trades, bool) or not isinstance(self.trades, int):
            raise ValueError(f"Bar.trades must be an int, got {self.trades!r}")

    def to_payload(self) -> BarPayload:
        """The bar as a JSON-safe dict: Decimals as their exact strings, times in ISO 8601."""
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "open_time": self.open_time.isoformat(),
            "close_time": self.close_time.isoformat(),
            "open": str(self.open),
            "high": str(self.high),
            "low": str(self.low),
            "close": str(self.close),
            "volume": str(self.volume),
            "quote_volume": str(self.quote_volume),
            "trades": self.trades,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> Bar:
        """The bar a ``to_payload()`` dict describes; raises ValueError if it is not one.

        Keys it does not know are ignored, so a newer producer may add fields.
        """
        try:
            return cls(
                symbol=_text(payload["symbol"]),
                interval=_text(payload["interval"]),
                open_time=datetime.fromisoformat(_text(payload["open_time"])),
                close_time=datetime.fromisoformat(_text(payload["close_time"])),
                open=_decimal(payload["open"]),
                high=_decimal(payload["high"]),
                low=_decimal(payload["low"]),
                close=_decimal(payload["close"]),
                volume=_decimal(payload["volume"]),
                quote_volume=_decimal(payload["quote_volume"]),
                trades=_integer(payload["trades"]),
            )
        except KeyError as exc:
            raise ValueError(f"bar payload lacks {exc.args[0]!r}") from None


def parse_kline(symbol: str, interval: str, row: Sequence[object]) -> Bar:
    """A bar from Binance's 12-field kline list (REST ``/api/v3/klines`` or a CSV row of it).

    The fields are open time (ms), open, high, low, close, volume, close time (ms), quote asset
    volume, number of trades, taker buy base volume, taker buy quote volume, ignore; the taker
    fields are not kept. Numbers may come as JSON values or as CSV strings. Raises ValueError on a
    row of the wrong shape.
    """
    if len(row) != KLINE_FIELDS:
        raise ValueError(f"a kline has {KLINE_FIELDS} fields, got {len(row)}: {list(row)!r}")
    return Bar(
        symbol=symbol,
        interval=interval,
        open_time=datetime_from_ms(_integer(row[0])),
        close_time=datetime_from_ms(_integer(row[6])),
        open=_decimal(row[1]),
        high=_decimal(row[2]),
        low=_decimal(row[3]),
        close=_decimal(row[4]),
        volume=_decimal(row[5]),
        quote_volume=_decimal(row[7]),
        trades=_integer(row[8]),
    )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _decimal(value: object) -> Decimal:
    # A float would bring its binary rounding error into the Decimal; only exact forms are taken.
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"expected a decimal string, got {value!r}")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None


def _integer(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"not an integer: {value!r}") from None
    raise ValueError(f"expected an integer, got {value!r}")
