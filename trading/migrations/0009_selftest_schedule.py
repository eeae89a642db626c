"""The system checks' schedule: the integration suite once a day, editable in the admin."""

from django.db import migrations

NAME = "analytics: system checks (integration suite)"


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=86_400, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=NAME,
        defaults={
            "task": "trading.analytics.tasks.run_selftest",
            "kwargs": '{"suite": "integration"}',
            "interval": interval,
            "queue": "analytics",
            "expire_seconds": 3600,
        },
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("trading", "0008_selftest")]

    operations = [migrations.RunPython(create, remove)]
