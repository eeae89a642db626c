"""ai's tasks (queue ``ai``)."""

from __future__ import annotations

from celery import shared_task


# A nudge: nobody reads its result. A process that sends a task with a result and never waits
# for it (the feed) keeps a Redis subscription's bookkeeping for each one, for good.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def drain_market_events() -> dict:
    """Turns new closed bars into signals through the ai consumer group."""
    from trading.ai.consumers import drain_bars

    return drain_bars()


@shared_task(acks_late=True, reject_on_worker_lost=True, time_limit=1800)
def retrain_model(trigger: str = "schedule") -> str:
    """Trains a new model on the bar store's latest window; the ai workers switch to it within
    seconds. Returns its version, or says why there is none: no bar came in since the serving
    version's window ended."""
    from trading.ai.services import NothingNewToLearn, train_model

    try:
        return train_model(trigger=trigger).version
    except NothingNewToLearn as nothing:
        return str(nothing)
