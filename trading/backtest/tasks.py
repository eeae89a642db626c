"""The backtest's task (queue ``analytics``): a run stored by the API, run on a worker."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_backtest(run_id: int) -> str:
    """Runs the stored run ``run_id``, its progress and outcome recorded on its row; a run that
    cannot run (no bars, no model) is stored as failed with the reason, not retried."""
    from trading.backtest.services import RunNotRunnable
    from trading.backtest.services import run_backtest as run

    try:
        return run(run_id).status
    except RunNotRunnable as skipped:
        return str(skipped)
    except ValueError as refused:
        return f"failed: {refused}"
