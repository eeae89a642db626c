"""The schedules ship as data, editable in the admin (django-celery-beat's database scheduler)."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from controlpanel.celery import app

pytestmark = pytest.mark.django_db


def test_every_schedule_names_a_registered_task_on_its_services_queue():
    tasks = {t.name: t for t in PeriodicTask.objects.all()}
    expected = {
        "analytics: portfolio snapshot", "analytics: drift check", "analytics: supervision sweep",
        "ai: scheduled retraining", "exec-risk: equity snapshot", "analytics: rebalancing",
        "analytics: sizing multipliers", "exec-risk: reconcile with the exchange",
    }  # fmt: skip
    assert expected <= set(tasks)
    app.loader.import_default_modules()
    for task in tasks.values():
        assert task.task in app.tasks, task.task
        # The queue Celery's routes give the task: its service's.
        assert task.queue == app.amqp.router.route({}, task.task)["queue"].name, task.name
