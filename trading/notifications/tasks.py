"""Notification tasks (run on the analytics queue)."""

from __future__ import annotations

from celery import shared_task


# A nudge, also on a schedule: nobody reads its result.
@shared_task(ignore_result=True)
def deliver_notifications() -> dict:
    """Reads new events into notifications, then sends each channel what its window allows."""
    from trading.notifications.consumers import drain_events
    from trading.notifications.services import dispatch_notifications

    return {"events": drain_events(), "sent": dispatch_notifications()}
