"""exec-risk's tasks (queue ``exec_risk``): thin wrappers that call the execution services."""

from __future__ import annotations

import logging

from celery import shared_task

from trading.execution import exits, orders, recovery, signals

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def process_signal(signal_id: str) -> dict:
    """Risk-checks a signal and places its order; safe to deliver more than once."""
    signal = signals.process_signal(signal_id)
    return {"signal_id": str(signal.pk), "status": signal.status, "reason": signal.reason}


@shared_task(acks_late=True, reject_on_worker_lost=True)
def submit_order_task(order_id: int, attempt: int) -> str:
    """Sends again an order the exchange refused for a reason a retry can help with."""
    from trading.models import Order

    order = Order.objects.get(pk=order_id)
    if order.status != Order.Status.NEW:
        return order.status
    return orders.submit_order(order, attempt).status


@shared_task(acks_late=True, reject_on_worker_lost=True)
def reconcile_order_task(order_id: int) -> str:
    return orders.reconcile_order(order_id).status


@shared_task(acks_late=True, reject_on_worker_lost=True)
def flatten_positions(account_id: int, actor: str) -> list[str]:
    from trading.models import Account

    account = Account.objects.get(pk=account_id)
    return [o.client_order_id for o in exits.flatten_positions(account, actor=actor)]


# A nudge: nobody reads its result (see trading.ai.tasks.drain_market_events).
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def drain_market_events() -> dict:
    """Handles new ``market.bar`` events through exec-risk's consumer group, one drain at a time."""
    from trading.execution.consumers import drain_bars

    return drain_bars()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def reconcile_exchange(startup: bool = False) -> dict:
    """At exec-risk start-up and on a schedule: symbol rules, exchange reachability, every
    order the platform is unsure of checked against the exchange, lost signals sent again."""
    return recovery.reconcile_exchange(startup=startup)


@shared_task
def snapshot_equity() -> str:
    """A point of the equity curve of every account, on a schedule."""
    from trading.models import Account

    for account in Account.objects.all():
        recovery.snapshot_equity(account)
    return "ok"


@shared_task
def prune_processed_events(days: int = 2) -> int:
    """Forgets handled event ids older than the event log keeps its events: a redelivery can
    only come from the stream, so an id older than the stream's window can no longer return."""
    from datetime import timedelta

    from django.utils import timezone

    from trading.models import ProcessedEvent

    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = ProcessedEvent.objects.filter(processed_at__lt=cutoff).delete()
    return deleted
