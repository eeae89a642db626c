"""The system checks against the running platform: stored, streamed, exported, and harmless to
the operator's book."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from prometheus_client.parser import text_string_to_metric_families

from trading.execution.venue import exchange
from trading.ledger import services as ledger
from trading.models import Account, Order, Position, SelfTestRun, Signal
from trading.selftest.base import SUITES

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def platform(web_url, service_workers, ai_ready):
    return web_url


def test_the_integration_suite_passes_against_the_running_platform(platform, client):
    from trading.risk.services import get_account

    main = get_account()
    out = StringIO()
    call_command("selftest", "--suite", "integration", stdout=out)
    lines = out.getvalue().splitlines()
    run = SelfTestRun.objects.get()
    assert run.status == "passed", out.getvalue()
    results = list(run.results.order_by("position"))
    assert [r.name for r in results] == [s.name for s in SUITES["integration"]]
    for result in results:
        assert any(line.startswith(f"{result.status:<4}  {result.name}") for line in lines)
        assert result.duration_seconds >= 0
    # Without the process supervisor, stopping a worker is not safe here: said, not faked.
    recovery = next(r for r in results if r.name == "service_recovery")
    assert recovery.status == "SKIP" and "supervisor" in recovery.detail

    # The sandbox is empty again and the operator's book was never touched.
    sandbox = Account.objects.get(name="selftest")
    assert sandbox.is_sandbox
    assert not Signal.objects.filter(account=sandbox).exists()
    assert not Position.objects.filter(account=sandbox).exists()
    assert not Order.objects.filter(account=sandbox).exists()
    assert not Signal.objects.filter(account=main).exists()
    # The sandbox trades from balances of its own, in the ledger and on the paper exchange, back
    # to its starting cash; the operator's are as they were.
    for account in (sandbox, main):
        held = {a: b.total for a, b in ledger.balances(account).items() if b.total}
        assert held == {"USDT": account.starting_cash}
        venue = {b.asset: b.total for b in exchange(account).balances() if b.total}
        assert venue == {"USDT": account.starting_cash}
    flow = next(r for r in results if r.name == "signal_flow")
    assert flow.data["sell_correlation_id"] != flow.data["correlation_id"]

    text = client.get("/metrics").content.decode()
    samples = {
        (s.name, s.labels.get("scenario")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("quantum_trader_selftest_")
    }
    assert samples[("quantum_trader_selftest_scenario_passed", "services_healthy")] == 1
    assert ("quantum_trader_selftest_scenario_passed", "service_recovery") not in samples


def test_a_second_run_is_refused_while_one_is_running(platform, olivia):
    from rest_framework.test import APIClient

    from trading.selftest.runner import start_run

    start_run("integration", trigger="test")
    api = APIClient()
    api.force_authenticate(olivia)
    response = api.post("/api/v1/selftest/runs", {"suite": "e2e"}, format="json")
    assert response.status_code == 409
    assert "still running" in response.json()["detail"]


def test_the_integration_suite_passes_on_a_futures_sandbox(platform):
    from trading.risk.services import get_account

    main = get_account()
    out = StringIO()
    call_command("selftest", "--suite", "integration", "--account-kind", "futures", stdout=out)
    assert "on a futures sandbox account" in out.getvalue()
    run = SelfTestRun.objects.get()
    assert run.status == "passed", out.getvalue()
    assert [r.name for r in run.results.order_by("position")] == [
        s.name for s in SUITES["integration"]
    ]
    sandbox = Account.objects.get(name="selftest")
    assert sandbox.kind == "futures"
    # Cleared again: the futures wallet is back at the starting cash.
    assert not Order.objects.filter(account=sandbox).exists()
    assert ledger.account_cash(sandbox) == sandbox.starting_cash
    assert not Signal.objects.filter(account=main).exists()
