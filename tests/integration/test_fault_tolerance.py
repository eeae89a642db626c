"""Fault tolerance with the real parts: a worker killed in the middle of a burst of signals, and
Redis stopped and restarted under a running worker."""

from __future__ import annotations

import base64
import json
import time
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from deploy.redis_server import LocalRedis, free_port
from tests.conftest import SYMBOLS, start_workers
from tests.support.faults import WriteLock, check_the_book
from tests.support.processes import Process, wait_for
from tests.support.signals import saved_signal

pytestmark = pytest.mark.django_db(transaction=True)

EXEC_RISK_NODE = "exec_risk@tests"
PROCESS_SIGNAL = "trading.execution.tasks.process_signal"
FINAL = ("filled", "denied")
BURST = 30


# --- a worker killed in the middle of a burst ---------------------------------------------------


def post_signal(api: APIClient, index: int) -> str:
    """The index-th signal of the burst: buys mostly, some sells, over the three symbols."""
    body = {
        "symbol": SYMBOLS[index % len(SYMBOLS)],
        "side": "SELL" if index % 4 == 3 else "BUY",
        "confidence": 0.9,
        "notional": "150",
    }
    response = api.post("/api/v1/signals", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def unacked_signals(redis_client) -> dict[str, str]:
    """The process_signal tasks exec-risk workers hold unacknowledged (acks-late: the task running
    and the one reserved), by delivery tag, with their signal: kombu's record in Redis."""
    from django.conf import settings

    signals = {}
    for tag, raw in redis_client.hgetall(f"{settings.REDIS_PREFIX}:celery:unacked").items():
        message = json.loads(raw)[0]
        if message["headers"].get("task") == PROCESS_SIGNAL:
            body = message["body"]
            if message["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args, _kwargs, _embed = json.loads(body)
            signals[tag] = args[0]
    return signals


def kill_while_a_signal_is_undecided(worker: Process, redis_client) -> dict[str, str]:
    """SIGKILLs the worker's main process while a process_signal task it holds has not decided
    its signal yet (pending, no order); returns the signals of the tasks it held. The pool
    process running the task dies with it: Celery's prefork pool sets PR_SET_PDEATHSIG."""
    from trading.models import Signal

    lock = WriteLock()
    try:
        for _attempt in range(30):
            with lock:
                time.sleep(0.3)  # the worker reaches its next write and waits there
                held = unacked_signals(redis_client)
                if Signal.objects.filter(pk__in=held.values(), status="pending").exists():
                    worker.kill()
                    worker.stop()  # reaps whatever is left of its process group
                    return held
            time.sleep(0.05)
    finally:
        lock.connection.close()
    raise AssertionError("never caught the worker between receiving a signal and deciding it")


def test_sigkill_of_exec_risk_mid_burst_loses_and_duplicates_no_order(
    olivia, market, service_workers, process_env, redis_client
):
    from trading.models import Order, Signal

    api = APIClient()
    api.force_authenticate(olivia)
    ids = [post_signal(api, index) for index in range(BURST // 3)]
    wait_for(lambda: Signal.objects.filter(status__in=FINAL).exists(), 20, "the burst to start")

    held = kill_while_a_signal_is_undecided(service_workers["exec-risk"], redis_client)
    ids += [post_signal(api, index) for index in range(BURST // 3, BURST)]
    # Restarted under the same node name, as the process supervisor does; the session's later
    # tests get the new worker.
    (service_workers["exec-risk"],) = start_workers([(EXEC_RISK_NODE, "exec_risk")], process_env)

    def undecided(*but: str) -> set[str]:
        signals = Signal.objects.filter(pk__in=ids).exclude(pk__in=but)
        return {str(pk) for pk in signals.exclude(status__in=FINAL).values_list("pk", flat=True)}

    def at_rest() -> bool:
        """Every signal the killed worker did not hold is decided, and no order is in flight (the
        restarted worker's reconciliation settles one the killed worker had sent)."""
        in_flight = Order.objects.filter(status__in=Order.OPEN_STATUSES).exists()
        return not undecided(*held.values()) and not in_flight

    wait_for(at_rest, 25, "the burst to be decided and no order to be in flight")
    # The tasks the killed worker held are not lost: the restarted worker's start-up
    # reconciliation sends every pending signal to exec-risk again.
    wait_for(lambda: not undecided(), 15, "every signal to be decided after the restart")
    check_the_book(ids)


# --- Redis stopped and restarted ----------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path, settings, process_env):
    """A Redis server of this test's own, its data and AOF in tmp_path (the session's server and
    workers are left alone): this process's settings and the environment of a worker point at it."""
    server = LocalRedis(free_port(), tmp_path / "redis").start()
    settings.REDIS_URL = server.url
    yield server, {**process_env, "REDIS_URL": server.url}
    server.stop()


def test_services_are_not_ready_while_redis_is_down_and_recover_by_themselves(
    client, settings, own_redis
):
    from trading.events.log import events_stream
    from trading.models import Signal
    from trading.risk.services import get_account
    from trading.store import redis_client

    server, env = own_redis
    (worker,) = start_workers([("analytics@redis-restart", "analytics")], env)
    try:
        wait_for(lambda: client.get("/services/analytics/ready").status_code == 200, 10, "ready")
        account = get_account()
        created = {
            str(saved_signal(account, symbol=symbol, side="BUY", notional=Decimal("100")).pk)
            for symbol in SYMBOLS
        }
        logged = redis_client().xlen(events_stream())
        assert logged >= len(created)

        server.stop()
        down = client.get("/services/analytics/ready")
        assert down.status_code == 503
        assert "redis" in down.json()["failing"]
        assert client.get("/ready").status_code == 503
        # Down for longer than a heartbeat lives: the worker has to write it again by itself.
        time.sleep(settings.HEARTBEAT_EXPIRY_SECONDS + 0.5)
        assert client.get("/services/analytics/ready").status_code == 503
        assert worker.alive(), worker.log_tail()

        server.start()  # the same port and data directory (AOF)
        wait_for(
            lambda: client.get("/services/analytics/ready").status_code == 200,
            20,
            "analytics to be ready again after Redis came back",
        )
        assert client.get("/ready").status_code == 200
        assert worker.alive(), worker.log_tail()
        kept = {
            str(pk) for pk in Signal.objects.filter(pk__in=created).values_list("pk", flat=True)
        }
        assert kept == created
        assert redis_client().xlen(events_stream()) >= logged  # the AOF kept the event log
    finally:
        worker.stop()
