"""The system checks' schedule: the integration suite once a day, editable in the admin."""

from django.db import migrations

from trading.schedules import Schedule, add_schedules, remove_schedules

SCHEDULES = [
    Schedule(
        "analytics: system checks (integration suite)",
        "trading.analytics.tasks.run_selftest",
        86_400,
        "analytics",
        {"suite": "integration"},
    ),
]


class Migration(migrations.Migration):
    dependencies = [("trading", "0008_selftest")]

    operations = [
        migrations.RunPython(
            lambda apps, editor: add_schedules(apps, SCHEDULES),
            lambda apps, editor: remove_schedules(apps, SCHEDULES),
        )
    ]
