"""manage.py download_klines: Binance klines into the bar store, through the real python-binance
Client with HTTP faked by responses from recorded payloads (tests/fixtures/binance)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.core.management import CommandError, call_command

from trading.marketdata.bars import datetime_from_ms
from trading.marketdata.binance_feed import MarketDataError, build_client
from trading.marketdata.download import download_klines
from trading.models import MarketBar

pytestmark = pytest.mark.django_db

KLINES_URL = "https://api.binance.com/api/v3/klines"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"
RECORDED = json.loads((FIXTURES / "klines.BTCUSDT-1m.json").read_text())
ERROR_429 = json.loads((FIXTURES / "error.-1003.429.json").read_text())
FIRST_OPEN = datetime_from_ms(RECORDED[0][0])
LAST_CLOSE = datetime_from_ms(RECORDED[-1][6])
LATER = LAST_CLOSE + timedelta(days=1)


class RecordedKlines:
    """Answers /api/v3/klines from the recorded rows as Binance does: rows opening from
    ``startTime`` up to ``endTime``, at most ``limit``; or an error for the request numbered in
    ``failures`` (counted from 1)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.failures: dict[int, dict] = {}

    def fail(self, request_number: int, error: dict) -> None:
        self.failures[len(self.requests) + request_number] = error

    def __call__(self, request):
        query = {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}
        self.requests.append(query)
        error = self.failures.pop(len(self.requests), None)
        if error is not None:
            return error["http_status"], error.get("headers", {}), json.dumps(error["body"])
        rows = [
            row
            for row in RECORDED
            if int(query["startTime"]) <= row[0] <= int(query.get("endTime", row[0]))
        ]
        return 200, {}, json.dumps(rows[: int(query.get("limit", 500))])


@pytest.fixture
def binance():
    server = RecordedKlines()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        http.add_callback(responses.GET, KLINES_URL, callback=server)
        yield server


def stored() -> list[MarketBar]:
    return list(MarketBar.objects.filter(symbol="BTCUSDT", interval="1m").order_by("open_time"))


def test_it_stores_every_recorded_bar_page_by_page(binance):
    done = download_klines(
        build_client(), "BTCUSDT", "1m", FIRST_OPEN, LAST_CLOSE, now=LATER, page_size=4
    )
    bars = stored()
    assert done.stored == len(bars) == 10 and done.pages == 3
    assert [b.open_time for b in bars] == [datetime_from_ms(row[0]) for row in RECORDED]
    first = bars[0]
    assert (first.open, first.high, first.low, first.close) == (
        Decimal("60685.22"), Decimal("60729.84"), Decimal("60670.90"), Decimal("60719.27"),
    )  # fmt: skip
    assert first.volume == Decimal("21.63272") and first.trades == 617
    assert {b.origin for b in bars} == {"binance"}
    starts = [int(r["startTime"]) for r in binance.requests]
    assert starts == [RECORDED[0][0], RECORDED[4][0], RECORDED[8][0]]


def test_a_download_interrupted_by_binance_resumes_after_the_last_stored_bar(binance):
    binance.fail(2, ERROR_429)
    client = build_client()
    with pytest.raises(MarketDataError) as failed:
        download_klines(client, "BTCUSDT", "1m", FIRST_OPEN, LAST_CLOSE, now=LATER, page_size=4)
    assert failed.value.retryable
    assert len(stored()) == 4  # the first page stays stored
    binance.requests.clear()
    done = download_klines(client, "BTCUSDT", "1m", FIRST_OPEN, LAST_CLOSE, now=LATER, page_size=4)
    assert done.started_at == datetime_from_ms(RECORDED[4][0]) and done.stored == 6
    assert [int(r["startTime"]) for r in binance.requests] == [RECORDED[4][0], RECORDED[8][0]]
    assert [b.open_time for b in stored()] == [datetime_from_ms(row[0]) for row in RECORDED]


def test_running_it_again_fetches_only_what_is_missing_and_stores_nothing_twice(binance):
    client = build_client()
    sixth_close = datetime_from_ms(RECORDED[5][6])
    download_klines(client, "BTCUSDT", "1m", FIRST_OPEN, sixth_close, now=LATER)
    assert len(stored()) == 6
    binance.requests.clear()
    done = download_klines(client, "BTCUSDT", "1m", FIRST_OPEN, LAST_CLOSE, now=LATER)
    assert done.stored == 4 and done.started_at == datetime_from_ms(RECORDED[6][0])
    assert [int(r["startTime"]) for r in binance.requests] == [RECORDED[6][0]]
    assert len(stored()) == 10
    binance.requests.clear()
    again = download_klines(client, "BTCUSDT", "1m", FIRST_OPEN, LAST_CLOSE, now=LATER)
    assert again.stored == 0 and binance.requests == [] and len(stored()) == 10


def test_a_bar_still_open_is_left_for_a_later_run(binance):
    tenth_open = datetime_from_ms(RECORDED[9][0])
    now = tenth_open + timedelta(seconds=30)
    download_klines(build_client(), "BTCUSDT", "1m", FIRST_OPEN, LAST_CLOSE, now=now)
    assert [b.open_time for b in stored()][-1] == datetime_from_ms(RECORDED[8][0])
    download_klines(build_client(), "BTCUSDT", "1m", FIRST_OPEN, LAST_CLOSE, now=LATER)
    assert len(stored()) == 10


def test_the_command_downloads_and_says_what_it_stored(binance, capsys):
    args = ["--symbol", "btcusdt", "--interval", "1m", "--start", FIRST_OPEN.isoformat(),
            "--end", LAST_CLOSE.isoformat()]  # fmt: skip
    call_command("download_klines", *args)
    out = capsys.readouterr().out
    assert "BTCUSDT 1m: 10 bars" in out and len(stored()) == 10
    call_command("download_klines", *args)
    assert "BTCUSDT 1m: 0 bars" in capsys.readouterr().out and len(stored()) == 10


def test_the_command_says_a_rate_limited_download_can_be_resumed(binance):
    binance.fail(1, ERROR_429)
    with pytest.raises(CommandError, match="run again to resume"):
        call_command(
            "download_klines", "--symbol", "BTCUSDT", "--interval", "1m",
            "--start", FIRST_OPEN.isoformat(), "--end", LAST_CLOSE.isoformat(),
        )  # fmt: skip
    assert stored() == []
