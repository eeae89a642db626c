"""Backtests over the API: an operator starts one, the analytics worker runs it, anyone logged
in reads its progress, report and trades; viewers cannot start one; bad input is refused naming
the field."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests.support.processes import wait_for
from trading.backtest.services import RunNotRunnable, create_run, run_backtest
from trading.marketdata.klines import load_bundled_bars
from trading.models import BacktestRun, StrategyConfig

pytestmark = pytest.mark.django_db(transaction=True)


def bundled_range(first: int, last: int) -> tuple[str, str]:
    bars = load_bundled_bars("BTCUSDT")
    return bars[first].open_time.isoformat(), bars[last].close_time.isoformat()


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def request_body(**changes) -> dict:
    start, end = bundled_range(0, 999)
    body = {
        "strategy": "fast-sma",
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "start": start,
        "end": end,
        "fee": "0.0005",
        "slippage_bps": "2",
        "volume_share": "0.5",
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


@pytest.fixture
def fast_sma():
    return StrategyConfig.objects.create(
        name="fast-sma", kind="sma_crossover", parameters={"fast": 5, "slow": 20},
        confidence=Decimal("0.8"),
    )  # fmt: skip


@pytest.fixture
def viewer_api(victor) -> APIClient:
    client = APIClient()
    client.force_authenticate(victor)
    return client


def finished(api: APIClient, run_id: int) -> dict | None:
    body = api.get(f"/api/v1/backtests/{run_id}").json()
    return body if body["status"] in ("done", "failed") else None


def test_an_operator_starts_a_backtest_that_the_analytics_worker_runs_to_its_report(
    api, viewer_api, fast_sma, service_workers
):
    response = api.post("/api/v1/backtests", request_body(), format="json")
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]
    assert response.json()["url"] == f"/api/v1/backtests/{run_id}"

    run = wait_for(lambda: finished(api, run_id), 120, f"backtest {run_id} to finish")
    assert run["status"] == "done", run["error"]
    assert (run["progress"], run["bars_done"], run["bars_total"]) == (1.0, 2000, 2000)
    assert run["strategy_version"] == "sma_crossover(fast=5,slow=20,notional=1000)"
    assert run["requested_by"] == "olivia" and run["code_version"]
    assert run["settings"]["taker_fee_rate"] == "0.0005"
    assert run["settings"]["slippage_bps"] == "2"
    assert run["settings"]["max_volume_share"] == "0.5"
    report = run["report"]
    assert report["bars"] == 2000 and report["fills"] == len(run["fills"]) > 0
    assert set(report["buy_and_hold"]["per_symbol"]) == {"BTCUSDT", "ETHUSDT"}
    assert len(report["equity_curve"]) == len(report["drawdown_curve"]) > 10
    for metric in ("sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor", "exposure"):
        assert metric in report
    assert run["data_start"] == report["start"] and run["data_end"] == report["end"]

    # A viewer reads the list and the report.
    listed = viewer_api.get("/api/v1/backtests").json()
    assert [r["id"] for r in listed] == [run_id]
    assert listed[0]["status"] == "done" and listed[0]["bars"] == 2000
    assert listed[0]["symbols"] == ["BTCUSDT", "ETHUSDT"] and "report" not in listed[0]
    assert viewer_api.get(f"/api/v1/backtests/{run_id}").json()["report"] == report


def test_the_trades_export_is_the_runs_fills_as_csv(api, viewer_api, fast_sma):
    start, end = bundled_range(0, 1499)
    run = create_run("fast-sma", ["SOLUSDT"], _moment(start), _moment(end))
    run = run_backtest(run.pk)
    assert run.fills

    response = viewer_api.get(f"/api/v1/backtests/{run.pk}/trades.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="backtest-{run.pk}-trades.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["ts", "symbol", "side", "quantity", "price", "fee", "realized_pnl",
                       "purpose"]  # fmt: skip
    assert len(rows) == len(run.fills) + 1
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first == run.fills[0]
    assert {row[1] for row in rows[1:]} == {"SOLUSDT"}
    assert {row[2] for row in rows[1:]} <= {"BUY", "SELL"}
    realized = sum(Decimal(row[6]) for row in rows[1:])
    assert realized == sum(Decimal(f["realized_pnl"]) for f in run.fills)

    assert api.get("/api/v1/backtests/999999/trades.csv").status_code == 404


def test_progress_is_stored_on_the_run_as_it_goes(fast_sma):
    start, end = bundled_range(0, 2999)
    run = create_run("fast-sma", ["BTCUSDT", "ETHUSDT", "SOLUSDT"], _moment(start), _moment(end))
    seen = []

    def watch(done: int, total: int) -> None:
        row = BacktestRun.objects.values("status", "bars_done", "bars_total").get(pk=run.pk)
        seen.append((done, row["status"], row["bars_done"], row["bars_total"]))

    run_backtest(run.pk, progress=watch)
    assert {status for _, status, _, _ in seen} == {"running"}
    assert {total for *_, total in seen} == {9000}
    stored = [bars_done for _, _, bars_done, _ in seen]
    assert stored == sorted(stored)  # it only moves forward
    assert any(0 < bars_done < 9000 for bars_done in stored)  # and is written as it goes
    assert all(bars_done <= done for done, _, bars_done, _ in seen)
    run.refresh_from_db()
    assert (run.status, run.bars_done, run.progress) == ("done", 9000, 1.0)
    # A redelivered task finds the run done and leaves it alone.
    with pytest.raises(RunNotRunnable):
        run_backtest(run.pk)


def test_a_viewer_cannot_start_a_backtest(viewer_api, fast_sma):
    response = viewer_api.post("/api/v1/backtests", request_body(), format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "only operators may do this"}
    assert not BacktestRun.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"strategy": "moon-shot"}, "strategy", "unknown strategy 'moon-shot'"),
        ({"symbols": "BTCUSDT,\u017folusdt"}, "symbols", "LATIN SMALL LETTER LONG S"),
        ({"symbols": ["DOGEBTC"]}, "symbols", "unknown symbol 'DOGEBTC'"),
        ({"symbols": []}, "symbols", "give at least one symbol"),
        ({"symbols": " , "}, "symbols", "give at least one symbol"),
        ({"fee": "1_000"}, "fee", "underscores are not allowed"),
        ({"fee": "0.5"}, "fee", "less than or equal to 0.1"),
        ({"slippage_bps": "\uff12"}, "slippage_bps", "only the ASCII digits"),
        ({"volume_share": "0"}, "volume_share", "greater than or equal to"),
        ({"start": "yesterday"}, "start", "Datetime has wrong format"),
        ({"end": bundled_range(0, 0)[0]}, "end", "must be after start"),
        ({"start": "2020-01-01T00:00:00Z", "end": "2020-02-01T00:00:00Z"}, "start", "no bars"),
        ({"model_version": "v1"}, "model_version", "only the ai_model strategy"),
        ({"strategy": "ai_model"}, "model_version", "no model serves"),
        ({"strategy": "ai_model", "model_version": "v404"}, "model_version", "unknown model"),
        ({"leverage": 5}, "leverage", "a spot account trades at 1"),
        ({"account_kind": "futures", "leverage": 126}, "leverage", "less than or equal to 125"),
        ({"account_kind": "margin"}, "account_kind", "not a valid choice"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, fast_sma, changes, field, says):
    response = api.post("/api/v1/backtests", request_body(**changes), format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field], response.json()
    assert says in str(response.json()[field]), response.json()
    assert not BacktestRun.objects.exists()


def test_symbols_may_be_a_comma_separated_text(api, fast_sma, monkeypatch):
    from tests.support.bus import record_sends
    from trading import bus

    sent = record_sends(monkeypatch, bus.RUN_BACKTEST)
    response = api.post(
        "/api/v1/backtests", request_body(symbols="ethusdt, BTCUSDT,ethusdt"), format="json"
    )
    assert response.status_code == 202, response.content
    run = BacktestRun.objects.get()
    assert run.symbols == ["ETHUSDT", "BTCUSDT"] and run.status == "queued"
    assert run.settings == {"fee": "0.0005", "slippage_bps": "2", "volume_share": "0.5"}
    assert [(s.task, s.args) for s in sent] == [(bus.RUN_BACKTEST, (run.pk,))]


def test_a_futures_backtest_runs_on_margin_at_the_leverage_asked(api, fast_sma, monkeypatch):
    from tests.support.bus import record_sends
    from trading import bus
    from trading.models import RiskLimits

    record_sends(monkeypatch, bus.RUN_BACKTEST)
    # The live risk limits apply: they must allow the leverage, as for a live futures account.
    RiskLimits.objects.update_or_create(symbol="", defaults={"max_leverage": 20})
    body = request_body(account_kind="futures", leverage=10, starting_cash="1000")
    response = api.post("/api/v1/backtests", body, format="json")
    assert response.status_code == 202, response.content
    run = BacktestRun.objects.get()
    assert run.settings["account_kind"] == "futures" and run.settings["leverage"] == "10"
    run_backtest(run.pk)
    run.refresh_from_db()
    assert run.status == "done"
    assert (run.settings["account_kind"], run.settings["leverage"]) == ("futures", 10)
    assert run.report["liquidations"] >= 0 and run.report["trades"] > 0, run.report
