"""Live closed bars from Binance spot, polled over REST with python-binance.

Binance's ``/api/v3/klines`` answers with the still-open bar last; that bar changes until its
interval ends and must never be published. ``BinanceKlineSource.poll(now)`` therefore returns only
bars whose close time is before ``now``, and remembers per symbol the last bar it returned, so each
closed bar comes out exactly once. Any failure comes out as one ``MarketDataError`` that says
whether a retry can help.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException, BinanceRequestException

from trading.marketdata.bars import Bar, datetime_to_ms, interval_length, parse_kline

# Binance's largest page of klines; catching up after downtime takes one page per poll.
MAX_LIMIT = 1000

# Error codes that mean "try again later" whatever the HTTP status (errors.md): -1003 too much
# request weight, -1001 internal disconnection, -1006 unexpected response, -1007 backend timeout,
# -1008 server overloaded.
_RETRYABLE_CODES = frozenset({-1003, -1001, -1006, -1007, -1008})
# 418 is an IP ban and 429 a rate limit; both lift after Retry-After seconds.
_RETRYABLE_STATUSES = frozenset({408, 418, 429})


class MarketDataError(Exception):
    """Market data could not be fetched. ``retryable`` says whether trying again can help.

    ``retry_after`` is the wait in seconds Binance asked for (418 and 429), when it gave one;
    ``code`` and ``status`` are Binance's error code and the HTTP status, when there was a response.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        code: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.code = code
        self.status = status


def build_client(
    api_key: str | None = None,
    api_secret: str | None = None,
    *,
    testnet: bool = False,
    timeout: float = 10.0,
) -> Client:
    """A python-binance Client that makes no request until used (klines need no API key)."""
    return Client(
        api_key, api_secret, requests_params={"timeout": timeout}, testnet=testnet, ping=False
    )


class BinanceKlineSource:
    """Closed bars of ``symbols`` at ``interval``, fetched with ``client.get_klines``.

    The first poll returns the latest ``backfill`` closed bars of each symbol, unless ``since``
    names, per symbol, the open time of the last bar already delivered (for example the last one
    published before a restart): then it returns the bars after that one, so nothing is skipped.
    """

    def __init__(
        self,
        client: Client,
        symbols: Iterable[str],
        interval: str = "5m",
        *,
        backfill: int = 1,
        since: Mapping[str, datetime] | None = None,
    ) -> None:
        self.client = client
        self.symbols = tuple(symbols)
        if not self.symbols:
            raise ValueError("a kline source needs at least one symbol")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"a symbol is listed twice: {', '.join(self.symbols)}")
        self.interval = interval
        self._length = interval_length(interval)
        if not 1 <= backfill < MAX_LIMIT:
            raise ValueError(f"backfill must be 1 to {MAX_LIMIT - 1}, got {backfill}")
        self.backfill = backfill
        since = since or {}
        unknown = set(since) - set(self.symbols)
        if unknown:
            raise ValueError(f"since names symbols not polled: {', '.join(sorted(unknown))}")
        self._last_open: dict[str, datetime] = {}
        for symbol, open_time in since.items():
            if open_time.utcoffset() is None:
                raise ValueError(f"since[{symbol!r}] must be an aware datetime")
            self._last_open[symbol] = open_time

    def last_open_time(self, symbol: str) -> datetime | None:
        """The open time of the last bar delivered for ``symbol``, None before the first."""
        return self._last_open.get(symbol)

    def poll(self, now: datetime) -> list[Bar]:
        """The bars that closed before ``now`` and were not returned before, oldest first.

        ``now`` should be the exchange's clock: a local clock running ahead would take a bar for
        closed a moment early. All or nothing: if any symbol fails, MarketDataError is raised and
        nothing counts as delivered, so the next poll asks again for every symbol and neither loses
        nor repeats a bar. The symbols after the failing one are not asked, which keeps a rate limit
        from being hit harder.
        """
        if now.utcoffset() is None:
            raise ValueError(f"now must be an aware datetime, got {now!r}")
        fresh: dict[str, list[Bar]] = {}
        for symbol in self.symbols:
            fresh[symbol] = self._closed_since_last(symbol, now)
        delivered: list[Bar] = []
        for symbol, bars in fresh.items():
            if bars:
                self._last_open[symbol] = bars[-1].open_time
                delivered.extend(bars)
        order = {symbol: i for i, symbol in enumerate(self.symbols)}
        delivered.sort(key=lambda bar: (bar.open_time, order[bar.symbol]))
        return delivered

    def _closed_since_last(self, symbol: str, now: datetime) -> list[Bar]:
        last = self._last_open.get(symbol)
        params: dict[str, Any] = {"symbol": symbol, "interval": self.interval}
        if last is None:
            # The newest rows, the last of which is usually still open.
            params["limit"] = self.backfill + 1
        else:
            params["startTime"] = datetime_to_ms(last + self._length)
            params["limit"] = MAX_LIMIT
        rows = self._fetch(params)
        bars: list[Bar] = []
        for row in rows:
            try:
                bar = parse_kline(symbol, self.interval, row)
            except (TypeError, ValueError) as exc:
                raise MarketDataError(
                    f"Binance sent a malformed {symbol} kline: {exc}", retryable=False
                ) from exc
            if bar.close_time >= now:
                continue  # still open
            if last is not None and bar.open_time <= last:
                continue  # already delivered
            if bars and bar.open_time <= bars[-1].open_time:
                continue  # out of order or repeated within the answer
            bars.append(bar)
        if last is None:
            bars = bars[-self.backfill :]
        return bars

    def _fetch(self, params: dict[str, Any]) -> list[Any]:
        return fetch_klines(self.client, params)


def fetch_klines(client: Client, params: dict[str, Any]) -> list[Any]:
    """One ``/api/v3/klines`` page as Binance's rows; any failure as ``MarketDataError``."""
    what = f"klines {params['symbol']} {params['interval']}"
    try:
        rows = client.get_klines(**params)
    except BinanceAPIException as exc:
        raise _api_error(what, exc) from exc
    except BinanceRequestException as exc:
        # A 2xx answer that is not JSON: a proxy or gateway page, usually gone next time.
        raise MarketDataError(f"{what}: {exc.message}", retryable=True) from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise MarketDataError(f"{what}: {type(exc).__name__}: {exc}", retryable=True) from exc
    except requests.RequestException as exc:
        raise MarketDataError(f"{what}: {type(exc).__name__}: {exc}", retryable=False) from exc
    if not isinstance(rows, list):
        raise MarketDataError(f"{what}: expected a list, got {rows!r:.200}", retryable=False)
    return rows


def _api_error(what: str, exc: BinanceAPIException) -> MarketDataError:
    status = exc.status_code
    retryable = status >= 500 or status in _RETRYABLE_STATUSES or exc.code in _RETRYABLE_CODES
    return MarketDataError(
        f"{what}: HTTP {status}, Binance code {exc.code}: {exc.message}",
        retryable=retryable,
        retry_after=_retry_after(exc.response),
        code=exc.code or None,
        status=status,
    )


def _retry_after(response: requests.Response | None) -> float | None:
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
