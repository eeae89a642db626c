"""Operators trade from the dashboard: the ticket, Close and Close all, through the API's intake
and risk checks; the price chart shows the fills; viewers get none of it. Against the real stack
(gunicorn, uvicorn, the workers, the replay feed) in Chromium."""

from __future__ import annotations

import sys
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LOG_DIR
from tests.support.browser import api, log_in
from tests.support.processes import Process

pytestmark = pytest.mark.django_db(transaction=True)

LAPTOP = {"width": 1440, "height": 900}
TABLET = {"width": 1024, "height": 768}


@pytest.fixture
def feed(process_env, redis_server):
    """The replay feed, one bar step every half second, as make run runs it."""
    command = [sys.executable, "manage.py", "run_feed", "--bar-seconds", "0.5", "--at-end", "loop",
               "--no-wait-for-model"]  # fmt: skip
    process = Process("feed", command, process_env, LOG_DIR).start()
    yield process
    process.stop()


def open_position(web_url, user, symbol: str, notional: str = "500") -> None:
    status, body = api(web_url, user, "/api/v1/signals?wait=1", {
        "symbol": symbol, "side": "BUY", "confidence": 0.9, "notional": notional,
    })  # fmt: skip
    assert status == 200 and body["status"] == "filled", body


def place_from_ticket(page: Page, symbol: str, side: str, amount: str, sizing: str = "notional"):
    ticket = page.get_by_test_id("trade-ticket")
    ticket.get_by_label("Symbol").select_option(symbol)
    # The radios are drawn as segmented buttons: their labels are what a user clicks.
    for name, value in (("side", side), ("sizing", sizing)):
        ticket.locator(f"label:has(input[name={name}][value={value}])").click()
        expect(ticket.locator(f"input[name={name}][value={value}]")).to_be_checked()
    ticket.get_by_label("Amount").fill(amount)
    page.get_by_test_id("ticket-review").click()
    dialog = page.get_by_test_id("trade-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"{side} {symbol}")
    dialog.get_by_test_id("trade-confirm").click()
    expect(dialog).to_be_hidden()


def test_an_operator_buys_from_the_ticket_and_sees_the_fill_on_the_price_chart(
    page: Page, web_url, olivia, service_workers, feed, artifacts
):
    from trading.models import Signal

    page.set_viewport_size(LAPTOP)
    log_in(page, web_url, "olivia", "operator password 1")
    chart = page.get_by_test_id("price-chart")
    expect(chart).to_have_attribute("data-symbol", "BTCUSDT")
    expect(chart).not_to_have_attribute("data-bars", "0", timeout=15_000)
    expect(chart).to_have_attribute("data-markers", "0")

    place_from_ticket(page, "BTCUSDT", "BUY", "2000")
    result = page.get_by_test_id("ticket-result")
    expect(result).to_have_attribute("data-status", "filled", timeout=30_000)
    expect(result).to_contain_text("FILLED")
    expect(result).to_contain_text("filled 0.")

    signal = Signal.objects.get()
    assert (signal.source, signal.confidence, signal.notional) == ("dashboard", 1, Decimal("2000"))
    # The fill lands on the bar it traded on, as a buy marker, with the position's entry line.
    expect(chart).to_have_attribute("data-buy-markers", "1", timeout=15_000)
    expect(chart).to_have_attribute("data-markers", "1")
    expect(chart).to_have_attribute("data-lines", "entry")
    # New bars keep arriving over the websocket, the marker stays on its bar.
    last_bar = chart.get_attribute("data-last-bar")
    expect(chart).not_to_have_attribute("data-last-bar", last_bar, timeout=15_000)
    expect(chart).to_have_attribute("data-buy-markers", "1")

    # The equity curve is scaled to its figures (about 100,000), not drawn from zero.
    equity = page.get_by_test_id("equity-chart")
    expect(equity).not_to_have_attribute("data-points", "0")
    low, y_min = float(equity.get_attribute("data-min")), float(equity.get_attribute("data-y-min"))
    assert 0.9 * low < y_min <= low
    expect(equity.locator("[data-plot=drawdown] canvas")).to_have_count(1)

    page.screenshot(path=str(artifacts / "dashboard-trade-laptop.png"), full_page=True)
    page.set_viewport_size(TABLET)
    page.wait_for_timeout(300)  # the charts follow their containers' width on the next frame
    page.screenshot(path=str(artifacts / "dashboard-trade-tablet.png"), full_page=True)


def test_a_denied_ticket_shows_its_reason_code_inline(
    page: Page, web_url, olivia, service_workers, market
):
    log_in(page, web_url, "olivia", "operator password 1")
    result = page.get_by_test_id("ticket-result")

    place_from_ticket(page, "ETHUSDT", "BUY", "1")
    expect(result).to_have_attribute("data-status", "denied", timeout=30_000)
    expect(result).to_have_attribute("data-reason", "MIN_NOTIONAL")
    expect(result.get_by_test_id("outcome-reason")).to_have_text("MIN_NOTIONAL")

    # Spot: nothing is sold that is not held.
    place_from_ticket(page, "SOLUSDT", "SELL", "5", sizing="quantity")
    expect(result).to_have_attribute("data-reason", "INSUFFICIENT_BALANCE", timeout=30_000)
    expect(result).to_have_attribute("data-status", "denied")
    expect(
        page.get_by_test_id("denials").locator('tr[data-reason="INSUFFICIENT_BALANCE"]')
    ).to_have_count(1)


def test_close_closes_one_position_and_close_all_closes_the_rest(
    page: Page, web_url, olivia, service_workers, market, artifacts
):
    from trading.models import Order, Position

    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        open_position(web_url, olivia, symbol)
    page.set_viewport_size(LAPTOP)
    log_in(page, web_url, "olivia", "operator password 1")
    rows = page.get_by_test_id("positions").locator("tbody tr[data-symbol]")
    expect(rows).to_have_count(3)

    page.get_by_test_id("close-BTCUSDT").click()
    dialog = page.get_by_test_id("trade-dialog")
    expect(dialog).to_contain_text("SELL all of BTCUSDT")
    dialog.get_by_test_id("trade-confirm").click()
    result = page.get_by_test_id("close-result")
    expect(result).to_have_attribute("data-status", "filled", timeout=30_000)
    expect(rows).to_have_count(2, timeout=15_000)
    expect(page.get_by_test_id("positions").locator('tr[data-symbol="BTCUSDT"]')).to_have_count(0)

    page.get_by_test_id("close-all").click()
    expect(dialog).to_contain_text("Close all 2 positions")
    page.screenshot(path=str(artifacts / "dashboard-close-all-confirm.png"))
    dialog.get_by_test_id("trade-confirm").click()
    expect(result).to_have_attribute("data-status", "filled", timeout=30_000)
    expect(result.locator("[data-symbol]")).to_have_count(2)
    expect(rows).to_have_count(0, timeout=15_000)
    expect(page.get_by_test_id("close-all")).to_be_disabled()
    assert not Position.objects.filter(status=Position.Status.OPEN).exists()
    # Each close went through the intake as its own signal; trading was not halted.
    assert Order.objects.filter(side="SELL", signal__close_position=True).count() == 3
    assert api(web_url, olivia, "/api/v1/risk")[1]["state"] == "ACTIVE"


def test_a_viewer_sees_no_ticket_or_close_buttons_and_the_api_refuses_its_order(
    page: Page, web_url, olivia, victor, service_workers, market, artifacts
):
    from trading.models import Signal

    open_position(web_url, olivia, "BTCUSDT")
    page.set_viewport_size(TABLET)
    log_in(page, web_url, "victor", "viewer password 1")
    expect(page.get_by_test_id("positions").locator('tr[data-symbol="BTCUSDT"]')).to_have_count(1)
    for test_id in ("trade-ticket", "trade-dialog", "close-all", "close-BTCUSDT", "close-result"):
        expect(page.get_by_test_id(test_id)).to_have_count(0)
    expect(page.get_by_test_id("price-chart")).to_be_visible()

    # The session and its CSRF token are not enough: the role decides.
    status = page.evaluate(
        """async () => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const response = await fetch('/api/v1/signals', {
                method: 'POST', credentials: 'same-origin',
                headers: {'Content-Type': 'application/json', 'X-CSRFToken': token,
                          'X-Requested-From': 'dashboard'},
                body: JSON.stringify({symbol: 'BTCUSDT', side: 'SELL', confidence: '1',
                                      close_position: true}),
            });
            return response.status;
        }"""
    )
    assert status == 403
    assert api(web_url, victor, "/api/v1/signals", {
        "symbol": "BTCUSDT", "side": "BUY", "confidence": 1, "notional": "500",
    })[0] == 403  # fmt: skip
    assert Signal.objects.count() == 1
    page.screenshot(path=str(artifacts / "dashboard-viewer-tablet.png"), full_page=True)
