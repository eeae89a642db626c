"""The exec-risk schedules, editable afterwards in the admin (django-celery-beat)."""

from django.db import migrations

from trading.schedules import Schedule, add_schedules, remove_schedules

SCHEDULES = [
    Schedule(
        "exec-risk: handle new market bars",
        "trading.execution.tasks.drain_market_events",
        5,
        "exec_risk",
    ),
    Schedule(
        "exec-risk: reconcile with the exchange",
        "trading.execution.tasks.reconcile_exchange",
        60,
        "exec_risk",
    ),
    Schedule(
        "exec-risk: equity snapshot", "trading.execution.tasks.snapshot_equity", 60, "exec_risk"
    ),
    Schedule(
        "exec-risk: forget old handled events",
        "trading.execution.tasks.prune_processed_events",
        3600,
        "exec_risk",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(
            lambda apps, editor: add_schedules(apps, SCHEDULES),
            lambda apps, editor: remove_schedules(apps, SCHEDULES),
        )
    ]
