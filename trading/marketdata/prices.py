"""The latest closed bar of each symbol, readable in constant time from any process.

One Redis hash, ``<prefix>:prices``, maps a symbol to its latest bar payload plus the wall-clock
time it was received. Readers (risk checks, the paper exchange, health) never scan history.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from decimal import Decimal

import redis

from trading.marketdata.bars import Bar
from trading.store import redis_client, rkey


@dataclass(frozen=True)
class Quote:
    bar: Bar
    received_at: float  # unix seconds, wall clock

    @property
    def price(self) -> Decimal:
        return self.bar.close

    def age(self, now: float) -> float:
        return max(0.0, now - self.received_at)


def _key() -> str:
    return rkey("prices")


HISTORY_BARS = 500
_PARSED_BARS_KEPT = 2048


def record_bars(bars: list[Bar], *, client: redis.Redis | None = None, now: float | None = None):
    """Stores each bar as its symbol's latest (an older bar never replaces a newer one) and
    appends it to the symbol's recent history, newest last, capped at ``HISTORY_BARS``.

    The bar already held (same close time) is stored again as just received but not appended
    twice, so a step retried after a lost answer leaves the history as one attempt would."""
    client = client or redis_client()
    received = time.time() if now is None else now
    current = latest_quotes([b.symbol for b in bars], client=client)
    latest = {symbol: quote.bar.close_time for symbol, quote in current.items()}
    mapping: dict[str, str] = {}
    appended: dict[str, list[str]] = {}
    for bar in bars:
        held = latest.get(bar.symbol)
        if held is not None and held > bar.close_time:
            continue
        payload = bar.to_payload()
        mapping[bar.symbol] = json.dumps({"bar": payload, "received_at": received})
        if held is None or held < bar.close_time:
            appended.setdefault(bar.symbol, []).append(json.dumps(payload))
        latest[bar.symbol] = bar.close_time
    if mapping:
        pipe = client.pipeline(transaction=True)
        pipe.hset(_key(), mapping=mapping)
        for symbol, values in appended.items():
            history = rkey("bars", symbol)
            pipe.rpush(history, *values[-HISTORY_BARS:])
            pipe.ltrim(history, -HISTORY_BARS, -1)
        pipe.execute()


def recent_bars(symbol: str, count: int = HISTORY_BARS, *, client: redis.Redis | None = None):
    """The symbol's last ``count`` closed bars, oldest first."""
    raw = (client or redis_client()).lrange(rkey("bars", symbol), -count, -1)
    return [_parsed(item) for item in raw]


# A reader of a history asks for nearly the same bars on every bar (the ai service reads the last
# WARMUP_BARS + 1 of a symbol each time): each stored text is parsed once per process. Bars are
# immutable, so sharing one between readers is safe; the size holds those windows (121 bars) of
# a dozen symbols, so a process's memory stops growing once a few hundred steps have played.
@functools.lru_cache(maxsize=_PARSED_BARS_KEPT)
def _parsed(text: str | bytes) -> Bar:
    return Bar.from_payload(json.loads(text))


def latest_quotes(
    symbols: list[str] | None = None, *, client: redis.Redis | None = None
) -> dict[str, Quote]:
    """The latest quote of each symbol asked for (all known symbols when None)."""
    client = client or redis_client()
    if symbols is None:
        raw = client.hgetall(_key())
    else:
        if not symbols:
            return {}
        raw = dict(zip(symbols, client.hmget(_key(), symbols), strict=True))
    quotes = {}
    for symbol, value in raw.items():
        if value:
            data = json.loads(value)
            quotes[symbol] = Quote(Bar.from_payload(data["bar"]), float(data["received_at"]))
    return quotes


def latest_quote(symbol: str, *, client: redis.Redis | None = None) -> Quote | None:
    return latest_quotes([symbol], client=client).get(symbol)


def latest_prices(symbols: list[str] | None = None) -> dict[str, Decimal]:
    return {symbol: quote.price for symbol, quote in latest_quotes(symbols).items()}
