"""Notifications: queued per channel from events and alerts, then sent, one message per channel
per window. Nothing in the trading path waits on this: events reach it through the log."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from trading import bus
from trading.models import Notification, NotificationChannel, NotificationDelivery
from trading.notifications import metrics, transport
from trading.notifications.kinds import Kind
from trading.notifications.notices import Notice, Waiting, compose, select, window_open
from trading.store import redis_client, rkey

logger = logging.getLogger(__name__)

DISPATCH_TASK = bus.DELIVER_NOTIFICATIONS
# Delivered notifications are kept this long; their deliveries, which say what they held, stay
# for the admin QT_NOTIFY_RETENTION_DAYS.
KEEP_DELIVERED = timedelta(days=7)
DISPATCH_LOCK_SECONDS = 60


def queue_notices(notices: Iterable[Notice], *, now: datetime | None = None) -> int:
    """Queues each notice for every enabled channel that wants it; returns how many rows."""
    notices = list(notices)
    if not notices:
        return 0
    now = now or timezone.now()
    channels = NotificationChannel.objects.filter(enabled=True).values_list(
        "pk", "kinds", "min_severity"
    )
    rows = [
        Notification(
            channel_id=channel_id,
            kind=notice.kind.value,
            severity=notice.severity.value,
            title=notice.title[:250],
            body=notice.body,
            reason=notice.reason[:64],
            created_at=now,
        )
        for channel_id, notice in select(notices, channels)
    ]
    Notification.objects.bulk_create(rows)
    return len(rows)


def request_dispatch() -> None:
    """Asks an analytics worker to send what is waiting now rather than at the next schedule."""
    bus.send(DISPATCH_TASK, queue="analytics", expires=30, ignore_result=True)


def dispatch_notifications(now: datetime | None = None) -> dict[str, int]:
    """Sends each channel whose window is open everything it has waiting, as one message.
    One dispatcher at a time across processes; returns what it did."""
    lock = redis_client().lock(rkey("lock", "notifications"), timeout=DISPATCH_LOCK_SECONDS)
    try:
        if not lock.acquire(blocking=False):
            return {"skipped": 1}
    except redis.RedisError:
        logger.warning("notifications: Redis is unreachable, nothing sent this round")
        return {"skipped": 1}
    try:
        return _dispatch(now or timezone.now())
    finally:
        try:
            lock.release()
        except redis.RedisError:
            pass  # expired: another dispatcher may run; the claim below keeps sends single


def _dispatch(now: datetime) -> dict[str, int]:
    done = {"sent": 0, "failed": 0, "waiting": 0}
    channels = NotificationChannel.objects.filter(
        enabled=True, notifications__delivery__isnull=True
    ).distinct()
    for channel in channels:
        last_sent = channel.deliveries.exclude(kind=Kind.TEST).aggregate(last=Max("sent_at"))[
            "last"
        ]
        if not window_open(last_sent, now, settings.NOTIFY_WINDOW_SECONDS):
            done["waiting"] += 1
            continue
        delivery = _claim(channel, now)
        if delivery is None:
            continue
        done["sent" if deliver(channel, delivery) else "failed"] += 1
    done["pruned"] = prune_notifications(now)
    return done


def prune_notifications(now: datetime) -> int:
    """Deletes delivered notifications older than ``KEEP_DELIVERED`` and deliveries older than
    ``NOTIFY_RETENTION_DAYS``; returns how many deliveries went."""
    Notification.objects.filter(
        delivery__isnull=False, created_at__lt=now - KEEP_DELIVERED
    ).delete()
    old = NotificationDelivery.objects.filter(
        sent_at__lt=now - timedelta(days=settings.NOTIFY_RETENTION_DAYS)
    )
    with transaction.atomic():
        # Deleting a delivery would leave what it held waiting (SET_NULL), to be sent again.
        Notification.objects.filter(delivery__in=old).delete()
        _total, deleted = old.delete()
    return deleted.get(NotificationDelivery._meta.label, 0)


def _claim(channel: NotificationChannel, now: datetime) -> NotificationDelivery | None:
    """A delivery holding everything the channel has waiting, or None if another dispatcher
    claimed some of it first (then nothing is claimed here)."""
    with transaction.atomic():
        waiting = list(channel.notifications.filter(delivery__isnull=True))
        if not waiting:
            return None
        message = compose([Waiting(n.kind, n.severity, n.title, n.body, n.reason) for n in waiting])
        delivery = NotificationDelivery.objects.create(
            channel=channel,
            sent_at=now,
            kind=message.kind,
            title=message.title,
            message=message.body,
            notices=message.notices,
        )
        ids = [n.pk for n in waiting]
        claimed = Notification.objects.filter(pk__in=ids, delivery__isnull=True).update(
            delivery=delivery
        )
        if claimed != len(ids):
            transaction.set_rollback(True)
            return None
    return delivery


def deliver(channel: NotificationChannel, delivery: NotificationDelivery) -> bool:
    """Sends the delivery's message to the channel and records the outcome; True if it went."""
    try:
        transport.send(channel.url, delivery.title, delivery.message)
    except transport.TransportError as error:
        delivery.ok, delivery.error = False, str(error)
        metrics.FAILED.inc(channel_kind=channel.scheme)
        logger.warning(
            "notification to %s (%s) failed: %s",
            channel.name,
            transport.masked_url(channel.url),
            error,
            extra={"channel": channel.name, "permanent": error.permanent},
        )
    else:
        delivery.ok = True
        metrics.SENT.inc(channel_kind=channel.scheme)
    delivery.save(update_fields=["ok", "error"])
    return bool(delivery.ok)


def send_test(channel: NotificationChannel, actor: str) -> NotificationDelivery:
    """Sends a test message to the channel now, whatever its window or kinds; recorded."""
    delivery = NotificationDelivery.objects.create(
        channel=channel,
        sent_at=timezone.now(),
        kind=Kind.TEST,
        title=f"Quantum Trader: test of {channel.name}",
        message=f"A test message, sent from the admin by {actor}.",
    )
    deliver(channel, delivery)
    return delivery
