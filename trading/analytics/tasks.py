"""analytics' tasks (queue ``analytics``)."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def drain_events() -> dict:
    """Handles new events of every type through the analytics consumer group."""
    from trading.analytics.consumers import drain_events as drain

    return drain()


@shared_task
def supervise_services() -> dict:
    """The supervision sweep: degraded services announced, remedies applied."""
    from trading.analytics.supervision import sweep

    return sweep()
