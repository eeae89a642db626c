"""Redis SIGKILLed under the API: signals sent while it is down are accepted (202, never 500),
and once it is back on the same data directory each is filled once, its ``signal.generated``
in the log once, by the real exec-risk worker and the real relay process."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections import Counter

import pytest

from deploy.redis_server import LocalRedis, free_port
from tests.conftest import LOG_DIR, SYMBOLS, bars_at, start_workers
from tests.support.processes import Process, http_status, wait_for, web_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def platform_on_own_redis(tmp_path, settings, process_env):
    """A Redis server of this test's own, and on it the web server, an exec-risk worker and the
    relay process, as make run starts them; yields the server and the web address."""
    server = LocalRedis(free_port(), tmp_path / "redis").start()
    settings.REDIS_URL = server.url
    env = {**process_env, "REDIS_URL": server.url}
    (worker,) = start_workers([("exec_risk@outage", "exec_risk")], env)
    port = free_port()
    web = web_server(port, env, LOG_DIR).start()
    relay = Process("relay-outage", [sys.executable, "manage.py", "relay_events"], env, LOG_DIR)
    relay.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_status(f"{url}/ready") == 200 or not web.alive(), 30, "web")
        assert web.alive(), web.log_tail()
        yield server, url
    finally:
        for process in (relay, web, worker):
            process.stop()
        server.stop()


def post(url: str, token: str, symbol: str) -> dict:
    body = {"symbol": symbol, "side": "BUY", "confidence": 0.9, "notional": "100"}
    request = urllib.request.Request(
        f"{url}/api/v1/signals",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, answer = error.code, error.read()
    assert status == 202, (status, answer[:2000])
    return json.loads(answer)


def test_signals_sent_while_redis_is_killed_are_filled_once_when_it_is_back(
    olivia, platform_on_own_redis
):
    from rest_framework.authtoken.models import Token

    from trading.events.replay import read_window
    from trading.marketdata.prices import record_bars
    from trading.models import Order, Signal

    server, url = platform_on_own_redis
    token = Token.objects.create(user=olivia).key
    record_bars(bars_at(0))

    before = post(url, token, "BTCUSDT")
    wait_for(lambda: Signal.objects.filter(pk=before["id"], status="filled").exists(), 20, "fill")

    server.process.kill()  # SIGKILL: no shutdown, the AOF as it was
    server.process.wait()
    during = [post(url, token, symbol) for symbol in SYMBOLS for _ in range(2)]
    ids = [body["id"] for body in during]
    assert set(Signal.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"pending"}

    server.start()  # the same port and data directory
    record_bars(bars_at(1))  # fresh quotes: the ones of before may not have reached the AOF

    def all_filled() -> bool:
        return Signal.objects.filter(pk__in=ids, status="filled").count() == len(ids)

    wait_for(all_filled, 60, "every signal sent while Redis was down to be filled")
    orders = Counter(Order.objects.filter(signal_id__in=ids).values_list("signal_id", flat=True))
    assert len(orders) == len(ids) and set(orders.values()) == {1}
    for body in during:
        generated = [
            event
            for _, event in read_window(limit=100, correlation_id=body["correlation_id"])
            if event.type == "signal.generated"
        ]
        assert len(generated) == 1, body
        assert generated[0].service == "web"
