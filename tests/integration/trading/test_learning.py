"""Every closed position becomes exactly one learning record and one learning.recorded event."""

from __future__ import annotations

import pytest

from tests.support.processes import wait_for
from tests.support.trading_api import post_signal, settled
from trading.analytics.consumers import drain_events
from trading.events.replay import read_window, republish
from trading.models import LearningRecord, Position

pytestmark = pytest.mark.django_db(transaction=True)


def learning_events(correlation_id: str) -> list:
    return [
        e for _, e in read_window(types=["learning.recorded"], correlation_id=correlation_id,
                                  limit=100)
    ]  # fmt: skip


def test_a_closed_position_produces_exactly_one_learning_event(api, market, service_workers):
    buy = post_signal(api, symbol="ETHUSDT")
    settled(api, buy["id"], "filled")
    position = Position.objects.get(correlation_id=buy["correlation_id"])
    sell = post_signal(api, symbol="ETHUSDT", side="SELL", quantity=str(position.quantity),
                       notional=None)  # fmt: skip
    settled(api, sell["id"], "filled")

    wait_for(lambda: learning_events(buy["correlation_id"]), 20, "the learning event")
    (record,) = LearningRecord.objects.filter(position=position)
    position.refresh_from_db()
    assert record.net_pnl == position.net_realized_pnl
    assert record.won == (position.net_realized_pnl > 0)
    assert record.signal_id is not None and str(record.signal.id) == buy["id"]

    # Drained again, and replayed: still one record and one event.
    drain_events()
    closed = read_window(types=["position.closed"], correlation_id=buy["correlation_id"], limit=10)
    republish([event for _, event in closed])
    drain_events()
    assert LearningRecord.objects.filter(position=position).count() == 1
    (event,) = learning_events(buy["correlation_id"])
    assert event.payload["position_id"] == position.pk
    assert event.payload["won"] == record.won


def test_the_analytics_group_counts_the_events_it_reads(api, client, market, service_workers):
    from tests.support.trading_api import metric

    before = metric(client, "analytics", "analytics_os_service_events_received_total",
                    type="order.filled")  # fmt: skip
    settled(api, post_signal(api)["id"], "filled")
    wait_for(
        lambda: (
            metric(
                client,
                "analytics",
                "analytics_os_service_events_received_total",
                type="order.filled",
            )
            > before
        ),
        20,
        "analytics to read the fill",
    )
