"""Operators watch and steer the platform in a real browser, against the real stack: uvicorn,
the workers, the replay feed. Actions that publish events go over HTTP to the server (never from
the test thread, where Playwright's event loop runs)."""

from __future__ import annotations

import re
import signal
import sys

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LOG_DIR, start_workers
from tests.support.browser import api, log_in
from tests.support.processes import Process
from trading.selftest.base import SUITES

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def feed(process_env, redis_server):
    """The replay feed, one bar step every half second, as make run runs it."""
    command = [sys.executable, "manage.py", "run_feed", "--bar-seconds", "0.5", "--at-end", "loop",
               "--no-wait-for-model"]  # fmt: skip
    process = Process("feed", command, process_env, LOG_DIR).start()
    yield process
    process.stop()


def test_prices_and_pnl_move_live_without_a_reload(
    page: Page, web_url, olivia, service_workers, feed, artifacts
):
    log_in(page, web_url, "olivia", "operator password 1")
    price = page.get_by_test_id("price-BTCUSDT").locator('[data-field="price"]')
    expect(price).not_to_have_text("\u2013", timeout=15_000)  # the placeholder dash
    status, signal_body = api(web_url, olivia, "/api/v1/signals", {
        "symbol": "BTCUSDT", "side": "BUY", "confidence": 0.9, "notional": "5000",
    })  # fmt: skip
    assert status == 202, signal_body
    row = page.get_by_test_id("positions").locator('tr[data-symbol="BTCUSDT"]')
    expect(row).to_be_visible(timeout=15_000)

    page.evaluate("window.__stayed = true")  # gone if the page reloads
    first_price = price.inner_text()
    first_unrealized = page.get_by_test_id("pnl-unrealized").inner_text()
    expect(price).not_to_have_text(first_price, timeout=15_000)
    expect(page.get_by_test_id("pnl-unrealized")).not_to_have_text(first_unrealized, timeout=15_000)
    assert page.evaluate("window.__stayed") is True
    page.screenshot(path=str(artifacts / "dashboard-live.png"), full_page=True)


def test_emergency_stop_denies_the_next_signal_and_resume_restores_trading(
    page: Page, web_url, olivia, service_workers, market, artifacts
):
    log_in(page, web_url, "olivia", "operator password 1")
    expect(page.get_by_test_id("trading-state")).to_have_text("ACTIVE")

    page.get_by_test_id("emergency-stop").click()
    dialog = page.get_by_test_id("halt-dialog")
    dialog.get_by_label("Reason").fill("browser drill")
    dialog.get_by_role("button", name="Stop trading").click()
    expect(page.get_by_test_id("trading-state")).to_have_text("HALTED")
    expect(page.get_by_test_id("trading-reason")).to_contain_text("browser drill")
    page.screenshot(path=str(artifacts / "dashboard-halted.png"), full_page=True)

    status, _ = api(web_url, olivia, "/api/v1/signals", {
        "symbol": "ETHUSDT", "side": "BUY", "confidence": 0.9, "notional": "200",
    })  # fmt: skip
    assert status == 202
    denial = page.get_by_test_id("denials").locator('tr[data-reason="TRADING_HALTED"]')
    expect(denial.first).to_be_visible(timeout=15_000)

    page.get_by_test_id("resume").click()
    dialog = page.get_by_test_id("resume-dialog")
    dialog.get_by_label("Reason").fill("drill over")
    dialog.get_by_role("button", name="Resume trading").click()
    expect(page.get_by_test_id("trading-state")).to_have_text("ACTIVE")


def test_a_limit_lowered_in_the_admin_denies_the_next_oversized_signal(
    page: Page, web_url, olivia, service_workers, market, artifacts
):
    from trading.risk.services import global_limits

    limits = global_limits()
    log_in(page, web_url, "olivia", "operator password 1")
    page.goto(f"{web_url}/admin/trading/risklimits/{limits.pk}/change/")
    page.get_by_label("Max position notional").fill("50")
    page.screenshot(path=str(artifacts / "admin-risk-limits.png"), full_page=True)
    page.get_by_role("button", name=re.compile(r"^Save$")).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    page.goto(f"{web_url}/")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-status", "live")
    status, _ = api(web_url, olivia, "/api/v1/signals", {
        "symbol": "BTCUSDT", "side": "BUY", "confidence": 0.9, "notional": "500",
    })  # fmt: skip
    assert status == 202
    denial = page.get_by_test_id("denials").locator('tr[data-reason="MAX_POSITION_NOTIONAL"]')
    expect(denial.first).to_be_visible(timeout=15_000)


def test_a_viewer_sees_no_emergency_stop_and_the_api_refuses_its_halt(
    page: Page, web_url, victor, service_workers
):
    log_in(page, web_url, "victor", "viewer password 1")
    expect(page.get_by_test_id("emergency-stop")).to_have_count(0)
    expect(page.get_by_test_id("resume")).to_have_count(0)
    status, body = api(web_url, victor, "/api/v1/risk/halt", {"reason": "not allowed"})
    assert status == 403, body
    assert api(web_url, victor, "/api/v1/risk")[1]["state"] == "ACTIVE"


def test_a_killed_worker_turns_its_tile_not_ready_and_back_when_restarted(
    page: Page, web_url, olivia, service_workers, process_env, settings
):
    log_in(page, web_url, "olivia", "operator password 1")
    tile = page.locator('.tile[data-service="analytics"]')
    expect(tile).to_have_attribute("data-state", "ready", timeout=10_000)

    service_workers["analytics"].popen.send_signal(signal.SIGKILL)
    service_workers["analytics"].popen.wait(10)
    # the heartbeat expires, and the tiles refresh every 2 s
    expiry_ms = int((settings.HEARTBEAT_EXPIRY_SECONDS + 3) * 1000)
    expect(tile).to_have_attribute("data-state", "not-ready", timeout=expiry_ms)
    expect(tile.locator('[data-field="ready"]')).to_have_text("not ready")

    (restarted,) = start_workers([("analytics@tests", "analytics")], process_env, concurrency=2)
    service_workers["analytics"] = restarted
    expect(tile).to_have_attribute("data-state", "ready", timeout=10_000)


def test_system_checks_run_from_the_dashboard_stream_their_results(
    page: Page, web_url, olivia, service_workers, ai_ready, artifacts
):
    from trading.models import SelfTestRun

    log_in(page, web_url, "olivia", "operator password 1")
    expect(page.get_by_test_id("checks-status")).to_have_attribute("data-status", "none")
    page.get_by_test_id("checks-suite").select_option("integration")
    page.get_by_test_id("run-checks").click()

    rows = page.get_by_test_id("checks").locator("tbody tr[data-name]")
    # results arrive one by one while the run is in progress
    expect(page.get_by_test_id("checks-status")).to_have_attribute("data-status", "running")
    expect(rows.first).to_be_visible(timeout=30_000)
    # every scenario of the suite: the original spec's ten and backtest parity
    expect(rows).to_have_count(len(SUITES["integration"]), timeout=90_000)
    status = page.get_by_test_id("checks-status")
    expect(status).not_to_have_attribute("data-status", "running", timeout=30_000)
    run = SelfTestRun.objects.get()
    assert run.trigger == "dashboard" and run.actor == "olivia"
    assert status.get_attribute("data-status") == run.status == "passed", [
        (r.name, r.status, r.detail) for r in run.results.all() if r.status == "FAIL"
    ]
    page.screenshot(path=str(artifacts / "dashboard-system-checks.png"), full_page=True)
