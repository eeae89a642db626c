"""Shipping Celery beat schedules as data: the migrations that add them call these, so every
schedule is a django-celery-beat row an operator can edit (or disable) in the admin."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple


class Schedule(NamedTuple):
    name: str
    task: str
    every_seconds: int
    queue: str
    kwargs: dict | None = None


def add_schedules(apps, schedules: Iterable[Schedule]) -> None:
    """Creates (or resets) each schedule; for a migration's RunPython."""
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    for schedule in schedules:
        interval, _ = interval_model.objects.get_or_create(
            every=schedule.every_seconds, period="seconds"
        )
        task_model.objects.update_or_create(
            name=schedule.name,
            defaults={
                "task": schedule.task,
                "interval": interval,
                "queue": schedule.queue,
                "kwargs": json.dumps(schedule.kwargs or {}),
                # A run that could not start in time is dropped rather than piled up.
                "expire_seconds": min(schedule.every_seconds, 3600),
            },
        )


def remove_schedules(apps, schedules: Iterable[Schedule]) -> None:
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    task_model.objects.filter(name__in=[s.name for s in schedules]).delete()
