"""Redis SIGKILLed and started again under a live dashboard: the page shows the true trading
state within 5 s of every halt and resume, without a reload. The platform here is a private one
on a Redis of its own (the web server, the websocket server, the outbox relay and the replay
feed, as make run starts them), so that killing it leaves the session's Redis alone."""

from __future__ import annotations

import sys

import pytest
from playwright.sync_api import Page, expect

from deploy.redis_server import LocalRedis, free_port
from tests.conftest import LOG_DIR
from tests.support.browser import api
from tests.support.processes import Process, http_status, socket_server, wait_for, web_server

pytestmark = pytest.mark.django_db(transaction=True)

# What the page must show within this long of the API's answer.
TRUTH_WITHIN_MS = 5_000

# Counts the websockets the page opens, to tell a reconnection from the first connection.
COUNT_SOCKETS = """
window.__socketsOpened = 0;
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) { super(...args); window.__socketsOpened += 1; }
};
"""


@pytest.fixture
def platform(tmp_path, settings, process_env):
    """A Redis server of this test's own and, on it, the processes the dashboard needs; yields
    the server and the web address."""
    server = LocalRedis(free_port(), tmp_path / "redis").start()
    settings.REDIS_URL = server.url
    web_port, socket_port = free_port(), free_port()
    url = f"http://127.0.0.1:{web_port}"
    env = {**process_env, "REDIS_URL": server.url, "PORT": str(web_port),
           "WS_PORT": str(socket_port), "QT_SELFTEST_BASE_URL": url}  # fmt: skip
    manage = [sys.executable, "manage.py"]
    feed = [*manage, "run_feed", "--bar-seconds", "0.5", "--at-end", "loop"]
    processes = [
        web_server(web_port, env, LOG_DIR),
        socket_server(socket_port, env, LOG_DIR),
        Process("relay-restart", [*manage, "relay_events"], env, LOG_DIR),
        Process("feed-restart", feed, env, LOG_DIR),
    ]
    try:
        for process in processes:
            process.start()
        for process, port in zip(processes, (web_port, socket_port), strict=False):
            probe = f"http://127.0.0.1:{port}/ready"
            wait_for(lambda p=process, u=probe: http_status(u) == 200 or not p.alive(), 30, probe)
            assert process.alive(), process.log_tail()
        yield server, url
    finally:
        for process in reversed(processes):
            process.stop()
        server.stop()


def toggle(page: Page, url: str, user, action: str, expected: str) -> None:
    """Halts or resumes through the API; the API must say ``expected``, and the page too, in
    time."""
    status, body = api(url, user, f"/api/v1/risk/{action}", {"reason": f"restart drill: {action}"})
    assert status == 200, body
    assert api(url, user, "/api/v1/risk")[1]["state"] == expected
    expect(page.get_by_test_id("trading-state")).to_have_text(expected, timeout=TRUTH_WITHIN_MS)


def test_the_page_shows_the_true_trading_state_within_5s_across_a_redis_restart(
    page: Page, olivia, platform, artifacts
):
    server, url = platform
    page.add_init_script(COUNT_SOCKETS)
    page.goto(f"{url}/accounts/login/?next=/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("operator password 1")
    page.get_by_role("button", name="Log in").click()
    connection = page.get_by_test_id("connection")
    expect(connection).to_have_attribute("data-status", "live", timeout=30_000)
    page.evaluate("window.__stayed = true")  # gone if the page reloads
    expect(page.get_by_test_id("trading-state")).to_have_text("ACTIVE")

    # Before: every process that broadcasts holds a channel-layer connection to this server.
    toggle(page, url, olivia, "halt", "HALTED")
    toggle(page, url, olivia, "resume", "ACTIVE")

    opened = page.evaluate("window.__socketsOpened")
    server.process.kill()  # SIGKILL: no shutdown, the AOF as it was
    server.process.wait()
    expect(connection).not_to_have_attribute("data-status", "live", timeout=15_000)
    server.start()  # the same port and data directory
    # The page is back on a new websocket, built from a snapshot of the restarted Redis.
    expect(connection).to_have_attribute("data-status", "live", timeout=30_000)
    assert page.evaluate("window.__socketsOpened") > opened

    for _ in range(3):
        toggle(page, url, olivia, "halt", "HALTED")
        toggle(page, url, olivia, "resume", "ACTIVE")
    assert page.evaluate("window.__stayed") is True
    page.screenshot(path=str(artifacts / "dashboard-after-redis-restart.png"), full_page=True)
