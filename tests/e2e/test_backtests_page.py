"""The backtests page in Chromium, against the real stack (gunicorn, uvicorn, the workers): an
operator starts runs from the form, watches them finish on the analytics worker, reads a report
drawn with uPlot and compares two runs side by side; a viewer only reads."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import api, log_in

pytestmark = pytest.mark.django_db(transaction=True)

LAPTOP = {"width": 1440, "height": 900}
TABLET = {"width": 1024, "height": 768}


def start_from_form(page: Page, strategy: str, symbols: list[str], **fields: str) -> None:
    form = page.get_by_test_id("bt-form")
    form.get_by_label("Strategy").select_option(strategy)
    for box in form.locator('input[name="symbols"]').all():
        box.set_checked(box.get_attribute("value") in symbols)
    labels = {"fee": "Fee rate", "slippage_bps": "Slippage (bps)"}
    for name, value in fields.items():
        form.get_by_label(labels[name]).fill(value)
    form.get_by_test_id("bt-start").click()


def finished_run(page: Page, previous: int | None = None) -> int:
    """Waits for the run the form started (not ``previous``) to finish; returns its id."""
    progress = page.get_by_test_id("bt-progress")
    expect(progress).to_be_visible()
    if previous is not None:
        expect(progress).not_to_have_attribute("data-run-id", str(previous))
    expect(progress).to_have_attribute("data-status", "done", timeout=90_000)
    return int(progress.get_attribute("data-run-id"))


def test_an_operator_runs_two_backtests_reads_a_report_and_compares_them(
    page: Page, web_url, olivia, service_workers, artifacts
):
    from trading.models import StrategyConfig

    StrategyConfig.objects.create(
        name="quick-sma", kind="sma_crossover", parameters={"fast": 5, "slow": 20},
        confidence=Decimal("0.8"),
    )  # fmt: skip
    page.set_viewport_size(LAPTOP)
    log_in(page, web_url, "olivia", "operator password 1")
    page.get_by_role("link", name="Backtests").click()
    expect(page).to_have_url(f"{web_url}/backtests/")
    expect(page.get_by_test_id("bt-runs")).to_contain_text("no backtests yet")

    # Refused input is shown beside its field, and nothing is started.
    start_from_form(page, "quick-sma", ["BTCUSDT"], fee="1_000")
    expect(page.locator('[data-error-for="fee"]')).to_contain_text("underscores are not allowed")
    expect(page.get_by_test_id("bt-progress")).to_be_hidden()

    start_from_form(page, "quick-sma", ["BTCUSDT", "ETHUSDT"], fee="0.001")
    first = finished_run(page)
    status, run = api(web_url, olivia, f"/api/v1/backtests/{first}")
    assert status == 200 and run["status"] == "done", run
    report = page.get_by_test_id("bt-report")
    expect(report).to_be_visible()
    expect(report).to_have_attribute("data-run-id", str(first))
    points = str(len(run["report"]["equity_curve"]))
    assert int(points) > 10
    expect(page.get_by_test_id("bt-equity-chart")).to_have_attribute("data-points", points)
    expect(page.get_by_test_id("bt-drawdown-chart")).to_have_attribute("data-points", points)
    expect(page.get_by_test_id("bt-equity-chart").locator("canvas")).to_have_count(1)
    expect(page.get_by_test_id("bt-drawdown-chart").locator("canvas")).to_have_count(1)
    metrics = page.get_by_test_id("bt-metrics")
    expect(metrics).to_contain_text("Sharpe")
    expect(metrics.locator('[data-metric="trades"]')).to_have_text(str(run["report"]["trades"]))
    expect(page.get_by_test_id("bt-hold")).to_contain_text("BTCUSDT")
    expect(page.get_by_test_id("bt-hold")).to_contain_text("ETHUSDT")
    fills = len(run["fills"])
    expect(page.get_by_test_id("bt-trades").locator("tbody tr")).to_have_count(min(fills, 500))
    expect(page.get_by_test_id("bt-csv")).to_have_attribute(
        "href", f"/api/v1/backtests/{first}/trades.csv"
    )
    with page.expect_download() as download:
        page.get_by_test_id("bt-csv").click()
    lines = download.value.path().read_text().splitlines()
    assert lines[0].startswith("ts,symbol,side") and len(lines) == fills + 1
    page.screenshot(path=str(artifacts / "backtests-report-laptop.png"), full_page=True)

    start_from_form(page, "rsi_mean_reversion", ["SOLUSDT"], slippage_bps="10")
    second = finished_run(page, previous=first)
    expect(report).to_have_attribute("data-run-id", str(second))
    runs = page.get_by_test_id("bt-runs")
    expect(runs.locator("tbody tr")).to_have_count(2)
    compare = page.get_by_test_id("bt-compare-button")
    expect(compare).to_be_disabled()
    expect(runs.locator(f'tr[data-run-id="{second}"]')).to_have_attribute("data-status", "done")
    runs.get_by_label(f"compare run {first}", exact=True).check()
    runs.get_by_label(f"compare run {second}", exact=True).check()
    compare.click()
    side_by_side = page.get_by_test_id("bt-compare")
    expect(side_by_side).to_be_visible()
    expect(side_by_side).to_have_attribute("data-runs", f"{first},{second}")
    expect(page.get_by_test_id("bt-compare-chart")).to_have_attribute("data-series", "2")
    expect(page.get_by_test_id("bt-compare-chart").locator("canvas")).to_have_count(1)
    table = page.get_by_test_id("bt-compare-table")
    expect(table.locator("thead th")).to_have_text(["", f"Run {first}", f"Run {second}"])
    expect(table).to_contain_text("sma_crossover(fast=5,slow=20")
    expect(table).to_contain_text("rsi_mean_reversion(")
    expect(table.locator('[data-metric="trades"]')).to_have_count(2)
    page.screenshot(path=str(artifacts / "backtests-compare-laptop.png"), full_page=True)

    page.set_viewport_size(TABLET)
    page.reload()
    runs.locator(f'[data-open="{first}"]').click()
    expect(report).to_have_attribute("data-run-id", str(first))
    expect(page.get_by_test_id("bt-equity-chart").locator("canvas")).to_have_count(1)
    width = page.get_by_test_id("bt-equity-chart").evaluate("el => el.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"], width
    page.screenshot(path=str(artifacts / "backtests-report-tablet.png"), full_page=True)


def test_a_viewer_reads_runs_but_has_no_form(page: Page, web_url, victor, artifacts):
    from trading.backtest.services import create_run, run_backtest
    from trading.marketdata.klines import load_bundled_bars

    bars = load_bundled_bars("ETHUSDT")
    run = run_backtest(create_run("sma_crossover", ["ETHUSDT"], bars[0].open_time,
                                  bars[999].close_time).pk)  # fmt: skip
    page.set_viewport_size(TABLET)
    log_in(page, web_url, "victor", "viewer password 1")
    page.goto(f"{web_url}/backtests/")
    expect(page.get_by_test_id("bt-form")).to_have_count(0)
    page.get_by_test_id("bt-runs").locator(f'[data-open="{run.pk}"]').click()
    expect(page.get_by_test_id("bt-equity-chart")).to_have_attribute(
        "data-points", str(len(run.report["equity_curve"]))
    )
    status, _ = api(web_url, victor, "/api/v1/backtests", {
        "strategy": "sma_crossover", "symbols": ["ETHUSDT"],
        "start": bars[0].open_time.isoformat(), "end": bars[999].close_time.isoformat(),
    })  # fmt: skip
    assert status == 403
    page.screenshot(path=str(artifacts / "backtests-viewer-tablet.png"), full_page=True)
