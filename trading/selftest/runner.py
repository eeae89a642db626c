"""Runs a suite of system checks against the running platform, on the sandbox account.

Each scenario's outcome is stored as it finishes and published (``selftest.result``), so the
dashboard shows the results arriving one by one; ``selftest.started`` and ``selftest.finished``
frame the run. Whatever happens, the sandbox is flattened and cleared at the end: the checks
leave no positions, orders or signals behind, and never touch the operator's book.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from trading.events import outbox
from trading.events.envelope import new_event
from trading.ledger.book import AccountKind
from trading.models import (
    Account,
    Fill,
    LearningRecord,
    Order,
    Position,
    SelfTestResult,
    SelfTestRun,
    Signal,
    SymbolLeverage,
    TradingStateChange,
    TradingStateRecord,
)
from trading.selftest.base import SUITES, Context, Outcome, Status

logger = logging.getLogger(__name__)

SANDBOX = "selftest"
Report = Callable[[SelfTestResult], None]


def sandbox_account() -> Account:
    from trading.risk.services import get_account

    account = get_account(SANDBOX)
    if not account.is_sandbox:
        Account.objects.filter(pk=account.pk).update(is_sandbox=True)
        account.is_sandbox = True
    return account


def sandbox_of_kind(account: Account, kind: AccountKind | str) -> Account:
    """The sandbox made a ``kind`` account (spot or USDⓈ-M futures), from an empty book: the
    checks run on either. Called once the sandbox is flat and cleared, so nothing it holds is
    valued under the other kind's rules."""
    kind = AccountKind(kind)
    if account.kind != kind:
        Account.objects.filter(pk=account.pk).update(kind=kind)
        account.kind = kind
        # Its ledger and paper exchange book start over under the new kind's rules.
        reset_sandbox(account)
    return account


class RunInProgress(Exception):
    """Another run holds the sandbox account."""


# A run that has not finished after this long died with its worker: it no longer blocks.
STALE_RUN = timedelta(minutes=15)


def start_run(suite: str, *, trigger: str, actor: str = "") -> SelfTestRun:
    """Records a new run; refuses while another one (not stale) is running, since both would
    trade on the one sandbox account."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    with transaction.atomic():
        running = SelfTestRun.objects.filter(
            status=SelfTestRun.Status.RUNNING, started_at__gte=timezone.now() - STALE_RUN
        ).first()
        if running is not None:
            raise RunInProgress(f"run {running.pk} ({running.suite}) is still running")
        return SelfTestRun.objects.create(suite=suite, trigger=trigger, actor=actor)


def run_suite(
    run: SelfTestRun, report: Report | None = None, *, account_kind: str = AccountKind.SPOT
) -> SelfTestRun:
    """Runs every scenario of the run's suite in order on a sandbox account of
    ``account_kind``; returns the finished run."""
    account = sandbox_account()
    reset_sandbox(account)
    account = sandbox_of_kind(account, account_kind)
    context = Context(settings.SELFTEST_BASE_URL, account)
    catalogue = SUITES[run.suite]
    outbox.record([
        new_event(
            "selftest.started",
            {"run_id": run.pk, "suite": run.suite, "scenarios": [s.name for s in catalogue],
             "trigger": run.trigger, "account_kind": account.kind},
            service="analytics",
        )])  # fmt: skip
    try:
        for position, scenario in enumerate(catalogue, start=1):
            started = time.perf_counter()
            try:
                outcome = scenario.run(context)
            except Exception as error:  # a crashing scenario is a failure, with its cause
                logger.exception("system check %s crashed", scenario.name)
                outcome = Outcome.failed(
                    f"{type(error).__name__}: {error}",
                    traceback=traceback.format_exc(limit=5)[-2000:],
                )
            result = SelfTestResult.objects.create(
                run=run,
                position=position,
                name=scenario.name,
                title=scenario.title,
                status=str(outcome.status),
                duration_seconds=round(time.perf_counter() - started, 4),
                detail=outcome.detail,
                data=_jsonable(outcome.data),
            )
            outbox.record([
                new_event(
                    "selftest.result",
                    {"run_id": run.pk, "suite": run.suite, "position": position,
                     "total": len(catalogue), "name": result.name, "status": result.status,
                     "duration_seconds": result.duration_seconds, "detail": result.detail},
                    service="analytics",
                )])  # fmt: skip
            if report is not None:
                report(result)
    finally:
        reset_sandbox(account)
        finish_run(run)
    return run


def finish_run(run: SelfTestRun) -> None:
    counts = {s: run.results.filter(status=s).count() for s in Status}
    run.passed, run.failed, run.skipped = (
        counts[Status.PASS],
        counts[Status.FAIL],
        counts[Status.SKIP],
    )
    complete = run.results.count() == len(SUITES[run.suite])
    ok = run.failed == 0 and complete
    run.status = SelfTestRun.Status.PASSED if ok else SelfTestRun.Status.FAILED
    run.finished_at = timezone.now()
    run.save()
    outbox.record([
        new_event(
            "selftest.finished",
            {"run_id": run.pk, "suite": run.suite, "status": run.status, "passed": run.passed,
             "failed": run.failed, "skipped": run.skipped},
            service="analytics",
        )])  # fmt: skip


def reset_sandbox(account: Account, settle_seconds: float = 10.0) -> None:
    """Closes the sandbox's open positions, waits for its orders to settle, then removes its
    ledger and its paper exchange balances, so that a run starts and ends on an empty book in
    the ACTIVE state. The sandbox is an account of its own: its balances are never the
    operator's."""
    from trading.execution.exits import flatten_positions
    from trading.execution.venue import exchange
    from trading.ledger.services import rebuild_balances

    if not account.is_sandbox:
        raise ValueError(f"{account} is not a sandbox account")
    flatten_positions(account, actor="selftest")
    deadline = time.monotonic() + settle_seconds
    while time.monotonic() < deadline:
        busy = (
            Signal.objects.filter(
                account=account, status__in=[Signal.Status.PENDING, Signal.Status.SUBMITTED]
            ).exists()
            or Order.objects.filter(account=account, status__in=Order.OPEN_STATUSES).exists()
        )
        if not busy:
            break
        time.sleep(0.2)
    with transaction.atomic():
        LearningRecord.objects.filter(position__account=account).delete()
        Fill.objects.filter(order__account=account).delete()
        Order.objects.filter(account=account).delete()
        Position.objects.filter(account=account).delete()
        Signal.objects.filter(account=account).delete()
        SymbolLeverage.objects.filter(account=account).delete()
        account.equity.all().delete()
        TradingStateChange.objects.filter(account=account).delete()
        TradingStateRecord.objects.filter(account=account).update(
            state=TradingStateRecord.State.ACTIVE, reason=""
        )
        Account.objects.filter(pk=account.pk).update(peak_equity=account.starting_cash)
        # With its fills gone, the sandbox's cash is its starting cash again, in the ledger and
        # in its book on the paper exchange.
        rebuild_balances(account)
    exchange(account).reset_balances()  # type: ignore[attr-defined]


def _jsonable(data: dict) -> dict:
    import json

    return json.loads(json.dumps(data, default=str))


def latest_results() -> list[SelfTestResult]:
    """The newest result of every scenario of every suite (for the metrics page)."""
    latest: dict[tuple[str, str], SelfTestResult] = {}
    finished = SelfTestRun.objects.filter(~Q(status=SelfTestRun.Status.RUNNING))
    for result in (
        SelfTestResult.objects.filter(run__in=finished)
        .select_related("run")
        .order_by("-run__started_at", "position")[:500]
    ):
        latest.setdefault((result.run.suite, result.name), result)
    return list(latest.values())
