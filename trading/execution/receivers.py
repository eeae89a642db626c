"""An exec-risk worker that starts reconciles with the exchange before trusting its own book."""

from __future__ import annotations

from celery import signals

from trading import bus


@signals.worker_ready.connect
def _reconcile_on_start(sender, **kwargs) -> None:
    queues = set(sender.app.amqp.queues.consume_from)
    if "exec_risk" in queues:
        bus.send(bus.RECONCILE_EXCHANGE, kwargs={"startup": True}, queue="exec_risk")
