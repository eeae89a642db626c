"""The analytics event schedule, editable afterwards in the admin (django-celery-beat)."""

from django.db import migrations

from trading.schedules import Schedule, add_schedules, remove_schedules

SCHEDULES = [
    Schedule("analytics: read new events", "trading.analytics.tasks.drain_events", 5, "analytics"),
]


class Migration(migrations.Migration):
    dependencies = [("trading", "0003_learning_and_performance")]

    operations = [
        migrations.RunPython(
            lambda apps, editor: add_schedules(apps, SCHEDULES),
            lambda apps, editor: remove_schedules(apps, SCHEDULES),
        )
    ]
