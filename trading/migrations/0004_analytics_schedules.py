"""The analytics schedules, editable afterwards in the admin (django-celery-beat)."""

from django.db import migrations

SCHEDULES = [
    # (name, task, every seconds, queue)
    ("analytics: read new events", "trading.analytics.tasks.drain_events", 5, "analytics"),
]


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds, queue in SCHEDULES:
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={
                "task": task,
                "interval": interval,
                "queue": queue,
                "expire_seconds": seconds,
            },
        )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("trading", "0003_learning_and_performance")]

    operations = [migrations.RunPython(create, remove)]
