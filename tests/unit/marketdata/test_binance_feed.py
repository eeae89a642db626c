"""The live Binance kline source, with the real python-binance Client and HTTP faked by responses.

Recorded payloads: ``tests/fixtures/binance/klines.*.json`` (see /work/shared/data/binance/SOURCE.md
for where they came from); the error bodies below are copied from the ``error.*.json`` files there.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from trading.marketdata.bars import Bar, datetime_from_ms, datetime_to_ms
from trading.marketdata.binance_feed import BinanceKlineSource, MarketDataError, build_client
from trading.marketdata.klines import load_bundled_bars

KLINES_URL = "https://api.binance.com/api/v3/klines"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"
RECORDED_1M = json.loads((FIXTURES / "klines.BTCUSDT-1m.json").read_text())
FIVE_MINUTES = timedelta(minutes=5)
ONE_MS = timedelta(milliseconds=1)
# 2025-08-21 00:00 UTC, the start of the bundled klines the fake exchange serves.
DAY_START = datetime(2025, 8, 21, tzinfo=UTC)


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def client(http):
    return build_client()


class FakeKlineServer:
    """Answers GET /api/v3/klines the way Binance does, from the bundled 5m bars.

    Rows opening after ``now`` do not exist yet; the row open at ``now`` is served with the values
    it has so far (a close that is not final), so a source that publishes it is caught.
    """

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.requests: list[dict[str, str]] = []
        self.failures: dict[str, tuple[int, dict]] = {}  # symbol -> status, body (one time)

    def __call__(self, request):
        query = {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}
        self.requests.append(query)
        symbol = query["symbol"]
        if symbol in self.failures:
            status, body = self.failures.pop(symbol)
            return status, {}, json.dumps(body)
        assert query["interval"] == "5m"
        now_ms = datetime_to_ms(self.now)
        rows = [binance_row(bar) for bar in load_bundled_bars(symbol)]
        rows = [row for row in rows if row[0] <= now_ms]
        if rows and rows[-1][6] >= now_ms:
            rows[-1] = [*rows[-1][:4], "0.01", "0.001", *rows[-1][6:]]  # partial close, volume
        limit = int(query.get("limit", 500))
        if "startTime" in query:
            rows = [row for row in rows if row[0] >= int(query["startTime"])][:limit]
        else:
            rows = rows[-limit:]
        return 200, {"Content-Type": "application/json"}, json.dumps(rows)

    def fail_once(self, symbol: str, status: int, body: dict) -> None:
        self.failures[symbol] = (status, body)


def binance_row(bar: Bar) -> list:
    """A bundled bar as Binance sends it: numbers as 8-decimal strings, times as integers."""

    def text(value: Decimal) -> str:
        return f"{value:.8f}"

    return [
        datetime_to_ms(bar.open_time),
        text(bar.open),
        text(bar.high),
        text(bar.low),
        text(bar.close),
        text(bar.volume),
        datetime_to_ms(bar.close_time),
        text(bar.quote_volume),
        bar.trades,
        "0",
        "0",
        "0",
    ]


@pytest.fixture
def server(http):
    fake = FakeKlineServer(now=DAY_START + timedelta(hours=1, seconds=3))
    http.add_callback(responses.GET, KLINES_URL, callback=fake)
    return fake


def bundled(symbol: str, open_time: datetime) -> Bar:
    index = (open_time - DAY_START) // FIVE_MINUTES
    return load_bundled_bars(symbol)[index]


# --- the recorded payload through the real Client --------------------------------------------


def test_it_reads_a_recorded_binance_answer_through_the_real_client(http, client):
    http.get(KLINES_URL, json=RECORDED_1M)
    after_all = datetime_from_ms(RECORDED_1M[-1][6]) + timedelta(seconds=1)
    source = BinanceKlineSource(client, ["BTCUSDT"], "1m", backfill=20)

    bars = source.poll(after_all)

    assert len(bars) == 10
    assert http.calls[0].request.url.startswith(KLINES_URL + "?")
    query = parse_qs(urlsplit(http.calls[0].request.url).query)
    assert query == {"symbol": ["BTCUSDT"], "interval": ["1m"], "limit": ["21"]}
    first = bars[0]
    assert first.open_time == datetime(2021, 10, 22, 23, 3, tzinfo=UTC)
    assert first.close_time == datetime(2021, 10, 22, 23, 3, 59, 999000, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close) == (
        Decimal("60685.22"),
        Decimal("60729.84"),
        Decimal("60670.90"),
        Decimal("60719.27"),
    )
    assert first.volume == Decimal("21.63272000")
    assert first.quote_volume == Decimal("1313200.01340410")
    assert first.trades == 617
    assert str(first.to_payload()["open"]) == "60685.22000000"


def test_it_never_returns_the_bar_that_is_still_open(http, client):
    http.get(KLINES_URL, json=RECORDED_1M)
    last_open = datetime_from_ms(RECORDED_1M[-1][0])
    source = BinanceKlineSource(client, ["BTCUSDT"], "1m", backfill=20)

    bars = source.poll(last_open + timedelta(seconds=30))

    assert [bar.open_time for bar in bars][-1] == last_open - timedelta(minutes=1)
    assert len(bars) == 9


def test_a_bar_counts_as_closed_only_once_its_close_time_has_passed(http, client):
    http.get(KLINES_URL, json=RECORDED_1M)
    close = datetime_from_ms(RECORDED_1M[-1][6])
    source = BinanceKlineSource(client, ["BTCUSDT"], "1m", backfill=20)
    assert source.poll(close)[-1].close_time < close
    assert source.poll(close + ONE_MS)[-1].close_time == close


def test_building_the_client_sends_no_request(http):
    build_client()
    assert len(http.calls) == 0  # responses would have refused an unregistered ping


# --- closed bars, once each ------------------------------------------------------------------


def test_the_first_poll_returns_the_latest_closed_bar_of_each_symbol(client, server):
    source = BinanceKlineSource(client, ["BTCUSDT", "ETHUSDT", "SOLUSDT"])

    bars = source.poll(server.now)

    latest = DAY_START + timedelta(minutes=55)
    assert bars == [bundled(s, latest) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]


def test_each_poll_returns_only_bars_closed_since_the_last_one(client, server):
    source = BinanceKlineSource(client, ["BTCUSDT", "ETHUSDT"])
    seen = source.poll(server.now)

    assert source.poll(server.now) == []  # nothing closed in between
    server.now += timedelta(minutes=4)
    assert source.poll(server.now) == []  # the 01:00 bar is still open
    server.now += timedelta(minutes=1)
    one_each = source.poll(server.now)
    assert one_each == [bundled(s, DAY_START + timedelta(hours=1)) for s in ("BTCUSDT", "ETHUSDT")]
    seen += one_each
    server.now += timedelta(minutes=15)
    later = source.poll(server.now)
    seen += later

    assert [(bar.symbol, bar.open_time) for bar in later] == [
        (symbol, DAY_START + timedelta(hours=1, minutes=minutes))
        for minutes in (5, 10, 15)
        for symbol in ("BTCUSDT", "ETHUSDT")
    ]
    keys = [(bar.symbol, bar.open_time) for bar in seen]
    assert len(keys) == len(set(keys)) == 10
    assert all(bar.close_time < server.now for bar in seen)
    assert all(bar == bundled(bar.symbol, bar.open_time) for bar in seen)  # final values


def test_after_the_first_poll_it_asks_binance_only_for_bars_after_the_last_one(client, server):
    source = BinanceKlineSource(client, ["SOLUSDT"])
    source.poll(server.now)
    server.now += FIVE_MINUTES
    source.poll(server.now)

    first, second = server.requests
    assert "startTime" not in first and first["limit"] == "2"
    assert second["startTime"] == str(datetime_to_ms(DAY_START + timedelta(hours=1)))
    assert source.last_open_time("SOLUSDT") == DAY_START + timedelta(hours=1)


def test_since_resumes_after_the_last_delivered_bar_so_a_restart_skips_nothing(client, server):
    delivered = DAY_START + timedelta(minutes=30)
    source = BinanceKlineSource(client, ["BTCUSDT"], since={"BTCUSDT": delivered})

    bars = source.poll(server.now)

    assert [bar.open_time for bar in bars] == [
        DAY_START + timedelta(minutes=m) for m in (35, 40, 45, 50, 55)
    ]


def test_backfill_returns_that_many_closed_bars_on_the_first_poll(client, server):
    source = BinanceKlineSource(client, ["ETHUSDT"], backfill=12)
    bars = source.poll(server.now)
    assert [bar.open_time for bar in bars] == [DAY_START + i * FIVE_MINUTES for i in range(12)]


def test_a_failed_poll_neither_loses_nor_repeats_a_bar(client, server):
    source = BinanceKlineSource(client, ["BTCUSDT", "ETHUSDT"])
    source.poll(server.now)
    server.now += timedelta(minutes=10)
    server.fail_once("ETHUSDT", 503, {"code": -1001, "msg": "Internal error; unable to process"})

    with pytest.raises(MarketDataError) as raised:
        source.poll(server.now)
    assert raised.value.retryable

    bars = source.poll(server.now)
    assert [(bar.symbol, bar.open_time) for bar in bars] == [
        (symbol, DAY_START + timedelta(hours=1, minutes=minutes))
        for minutes in (0, 5)
        for symbol in ("BTCUSDT", "ETHUSDT")
    ]
    assert source.poll(server.now) == []


def test_after_a_rate_limit_the_remaining_symbols_are_not_asked(client, server):
    source = BinanceKlineSource(client, ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    server.fail_once("ETHUSDT", 429, {"code": -1003, "msg": "Too much request weight used"})
    with pytest.raises(MarketDataError):
        source.poll(server.now)
    assert [query["symbol"] for query in server.requests] == ["BTCUSDT", "ETHUSDT"]


def test_a_naive_now_is_refused(client, server):
    source = BinanceKlineSource(client, ["BTCUSDT"])
    with pytest.raises(ValueError, match="aware"):
        source.poll(datetime(2025, 8, 21, 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"symbols": []},
        {"symbols": ["BTCUSDT", "BTCUSDT"]},
        {"symbols": ["BTCUSDT"], "interval": "1M"},
        {"symbols": ["BTCUSDT"], "backfill": 0},
        {"symbols": ["BTCUSDT"], "since": {"ETHUSDT": DAY_START}},
    ],
    ids=["no-symbols", "twice", "month-interval", "no-backfill", "since-unknown-symbol"],
)
def test_a_bad_source_config_is_refused(client, kwargs):
    with pytest.raises(ValueError):
        BinanceKlineSource(client, **kwargs)


# --- error mapping ---------------------------------------------------------------------------

# Bodies and headers as in /work/shared/data/binance/error.*.json.
RATE_LIMITED = (
    429,
    {"Retry-After": "35"},
    {
        "code": -1003,
        "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE."
        " Please use WebSocket Streams for live updates to avoid polling the API.",
    },
)
IP_BANNED = (
    418,
    {"Retry-After": "720"},
    {
        "code": -1003,
        "msg": "Way too much request weight used; IP banned until 1660090423228."
        " Please use WebSocket Streams for live updates to avoid bans.",
    },
)
BACKEND_TIMEOUT = (
    504,
    {},
    {
        "code": -1007,
        "msg": "Timeout waiting for response from backend server. Send status unknown;"
        " execution status unknown.",
    },
)
INVALID_SYMBOL = (400, {}, {"code": -1121, "msg": "Invalid symbol."})
# A limit hit in front of Binance's API (its WAF or a proxy): no Binance error code at all.
PLAIN_429 = (429, {"Retry-After": "5"}, {"msg": "Too Many Requests"})
BAD_PARAMETER = (
    400,
    {},
    {
        "code": -1102,
        "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
    },
)


@pytest.mark.parametrize(
    ("answer", "retryable", "retry_after", "code"),
    [
        (RATE_LIMITED, True, 35.0, -1003),
        (IP_BANNED, True, 720.0, -1003),
        (BACKEND_TIMEOUT, True, None, -1007),
        (PLAIN_429, True, 5.0, None),
        (INVALID_SYMBOL, False, None, -1121),
        (BAD_PARAMETER, False, None, -1102),
    ],
    ids=[
        "429-rate-limit",
        "418-ip-ban",
        "504-backend-timeout",
        "429-without-code",
        "invalid-symbol",
        "bad-parameter",
    ],
)
def test_binance_errors_say_whether_a_retry_can_help(
    http, client, answer, retryable, retry_after, code
):
    status, headers, body = answer
    http.get(KLINES_URL, status=status, headers=headers, json=body)
    source = BinanceKlineSource(client, ["BTCUSDT"])

    with pytest.raises(MarketDataError) as raised:
        source.poll(DAY_START)

    error = raised.value
    assert (error.retryable, error.retry_after, error.code, error.status) == (
        retryable,
        retry_after,
        code,
        status,
    )
    assert body["msg"] in str(error) and "BTCUSDT" in str(error)


def test_the_first_poll_returns_no_more_than_backfill_bars_whatever_binance_sends(http, client):
    http.get(KLINES_URL, json=RECORDED_1M)  # ten closed bars, more than the limit asked for
    after_all = datetime_from_ms(RECORDED_1M[-1][6]) + timedelta(seconds=1)
    bars = BinanceKlineSource(client, ["BTCUSDT"], "1m", backfill=3).poll(after_all)
    assert [datetime_to_ms(bar.open_time) for bar in bars] == [row[0] for row in RECORDED_1M[-3:]]


@pytest.mark.parametrize(
    ("fault", "retryable"),
    [
        (requests.ConnectionError("connection refused"), True),
        (requests.Timeout("read timed out"), True),
        (requests.exceptions.InvalidURL("bad url"), False),
    ],
    ids=["connection-refused", "timeout", "invalid-url"],
)
def test_network_failures_say_whether_a_retry_can_help(http, client, fault, retryable):
    http.get(KLINES_URL, body=fault)
    with pytest.raises(MarketDataError) as raised:
        BinanceKlineSource(client, ["BTCUSDT"]).poll(DAY_START)
    assert raised.value.retryable is retryable
    assert raised.value.__cause__ is fault


def test_a_gateway_page_instead_of_json_is_retryable(http, client):
    http.get(KLINES_URL, status=502, body="<html><body>502 Bad Gateway</body></html>")
    with pytest.raises(MarketDataError) as raised:
        BinanceKlineSource(client, ["BTCUSDT"]).poll(DAY_START)
    assert raised.value.retryable and raised.value.status == 502


def test_a_success_answer_that_is_not_json_is_retryable(http, client):
    http.get(KLINES_URL, status=200, body="<html>maintenance</html>")
    with pytest.raises(MarketDataError) as raised:
        BinanceKlineSource(client, ["BTCUSDT"]).poll(DAY_START)
    assert raised.value.retryable


@pytest.mark.parametrize(
    "payload",
    [{"code": 0, "msg": "not a list"}, [RECORDED_1M[0][:11]], [["x", *RECORDED_1M[0][1:]]]],
    ids=["object", "short-row", "bad-open-time"],
)
def test_a_malformed_answer_is_a_permanent_error(http, client, payload):
    http.get(KLINES_URL, json=payload)
    with pytest.raises(MarketDataError) as raised:
        BinanceKlineSource(client, ["BTCUSDT"], "1m").poll(DAY_START)
    assert raised.value.retryable is False


def test_bars_binance_sends_again_are_not_returned_again(http, client):
    http.get(KLINES_URL, json=RECORDED_1M)  # the same answer whatever was asked
    after_all = datetime_from_ms(RECORDED_1M[-1][6]) + timedelta(seconds=1)
    source = BinanceKlineSource(client, ["BTCUSDT"], "1m", backfill=20)
    assert len(source.poll(after_all)) == 10
    assert source.poll(after_all) == []
