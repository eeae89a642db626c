"""Notification counters, on the web process's /metrics. Sends happen in analytics workers and in
web processes (the admin's test button), so the counts live in Redis like the services' worker
counters, in a hash of their own (``<prefix>:metrics:notifications``), and add up across them."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, Metric

from trading.observability.metrics import (
    Kind,
    MetricSpec,
    ServiceMetric,
    build_families,
    read_samples,
)

HASH = "notifications"


def _channel_kinds() -> list[str]:
    """The kinds (apprise schemes) of the channels configured now, shown at 0 until they count."""
    from django.db import DatabaseError

    from trading.models import NotificationChannel

    try:
        urls = NotificationChannel.objects.values_list("url", flat=True)
        return sorted({NotificationChannel(url=url).scheme for url in urls})
    except DatabaseError:
        return []


def _counter(name: str, documentation: str) -> ServiceMetric:
    return ServiceMetric(
        MetricSpec(
            service=HASH,
            name=name,
            kind=Kind.COUNTER,
            documentation=documentation,
            labelnames=("channel_kind",),
            known=(("channel_kind", _channel_kinds),),
        )
    )


SENT = _counter(
    "quantum_trader_notifications_sent_total", "Notification messages a channel accepted"
)
FAILED = _counter(
    "quantum_trader_notifications_failed_total",
    "Notification messages that did not go out (the error is in the admin's deliveries)",
)


class NotificationsCollector:
    """Renders the counters from Redis at scrape time."""

    def describe(self) -> list[Metric]:
        # Names only: registering must not touch Redis or the database.
        return [
            CounterMetricFamily(spec.name.removesuffix("_total"), spec.documentation)
            for spec in (SENT.spec, FAILED.spec)
        ]

    def collect(self) -> list[Metric]:
        import redis

        from trading.store import redis_client

        try:
            samples = read_samples(redis_client(), HASH)
        except redis.RedisError:
            return []
        return build_families([SENT.spec, FAILED.spec], samples)
