import pytest

from controlpanel.celery import app
from trading import bus

NAMES = {
    name: value for name, value in vars(bus).items() if name.isupper() and isinstance(value, str)
}

# The queue each task is routed to when its sender names none (controlpanel/celery.py).
ROUTED = {
    bus.AI_DRAIN_MARKET_EVENTS: "ai",
    bus.RETRAIN_MODEL: "ai",
    bus.PROCESS_SIGNAL: "exec_risk",
    bus.SUBMIT_ORDER: "exec_risk",
    bus.RECONCILE_ORDER: "exec_risk",
    bus.FLATTEN_POSITIONS: "exec_risk",
    bus.EXEC_DRAIN_MARKET_EVENTS: "exec_risk",
    bus.RECONCILE_EXCHANGE: "exec_risk",
    bus.ANALYTICS_DRAIN_EVENTS: "analytics",
    bus.RUN_SELFTEST: "analytics",
    bus.DELIVER_NOTIFICATIONS: "analytics",
    bus.RUN_BACKTEST: "analytics",
}


@pytest.fixture(scope="module")
def registered() -> set[str]:
    app.loader.import_default_modules()
    return set(app.tasks)


@pytest.mark.parametrize("name", sorted(NAMES.values()))
def test_every_name_on_the_bus_is_a_registered_task(registered, name):
    assert name in registered


@pytest.mark.parametrize(("name", "queue"), sorted(ROUTED.items()))
def test_a_task_sent_by_name_goes_to_its_service_queue(name, queue):
    route = app.amqp.router.route({}, name, (), {})
    assert route["queue"].name == queue


def test_the_ping_has_no_route_of_its_own():
    """Sent to the queue of the service it asks; alone it would land on the default queue."""
    route = app.amqp.router.route({}, bus.PING_SERVICE, (), {})
    assert route["queue"].name == app.conf.task_default_queue


def test_send_hands_the_name_args_queue_and_options_to_celery(monkeypatch):
    sent = []
    monkeypatch.setattr(
        app, "send_task", lambda name, **options: sent.append((name, options)) or "result"
    )
    assert bus.send(bus.SUBMIT_ORDER, 7, 2, countdown=4) == "result"
    bus.send(bus.RECONCILE_EXCHANGE, kwargs={"startup": True}, queue="exec_risk")
    assert sent == [
        (bus.SUBMIT_ORDER, {"args": (7, 2), "countdown": 4}),
        (bus.RECONCILE_EXCHANGE, {"args": (), "kwargs": {"startup": True}, "queue": "exec_risk"}),
    ]
