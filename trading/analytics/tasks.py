"""analytics' tasks (queue ``analytics``)."""

from __future__ import annotations

from celery import shared_task


# A nudge: nobody reads its result (see trading.ai.tasks.drain_market_events).
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def drain_events() -> dict:
    """Handles new events of every type through the analytics consumer group."""
    from trading.analytics.consumers import drain_events as drain

    return drain()


@shared_task
def supervise_services() -> dict:
    """The supervision sweep: degraded services announced, remedies applied."""
    from trading.analytics.supervision import sweep

    return sweep()


@shared_task
def snapshot_performance() -> str:
    """The portfolio's performance now, persisted."""
    from trading.analytics.services import snapshot_performance as snapshot
    from trading.risk.services import get_account

    return str(snapshot(get_account()).pk)


@shared_task
def check_drift() -> str:
    """Live features against the model's training data; drift asks the ai queue to retrain."""
    from trading.analytics.services import check_drift as check

    report = check()
    return "no model" if report is None else report.summary


@shared_task
def update_sizing() -> dict:
    """Each symbol's size multiplier from its recent risk-adjusted performance."""
    from trading.analytics.services import update_sizing as update
    from trading.risk.services import get_account

    return update(get_account())


@shared_task
def rebalance_portfolio() -> list[str]:
    """Trims positions above the target weight, through exec-risk."""
    from trading.analytics.services import rebalance
    from trading.risk.services import get_account

    return [str(signal.id) for signal in rebalance(get_account())]


@shared_task(time_limit=900)
def run_selftest(run_id: int | None = None, suite: str = "integration") -> str:
    """Runs a suite of system checks (a run made by the API, or a new one on the schedule)."""
    from trading.models import SelfTestRun
    from trading.selftest.runner import run_suite, start_run

    run = (
        SelfTestRun.objects.get(pk=run_id)
        if run_id is not None
        else start_run(suite, trigger="schedule")
    )
    return run_suite(run).status
