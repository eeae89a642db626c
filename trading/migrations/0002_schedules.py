"""The exec-risk schedules, editable afterwards in the admin (django-celery-beat)."""

from django.db import migrations

SCHEDULES = [
    # (name, task, every seconds, queue)
    (
        "exec-risk: handle new market bars",
        "trading.execution.tasks.drain_market_events",
        5,
        "exec_risk",
    ),
    (
        "exec-risk: reconcile with the exchange",
        "trading.execution.tasks.reconcile_exchange",
        60,
        "exec_risk",
    ),
    ("exec-risk: equity snapshot", "trading.execution.tasks.snapshot_equity", 60, "exec_risk"),
    (
        "exec-risk: forget old handled events",
        "trading.execution.tasks.prune_processed_events",
        3600,
        "exec_risk",
    ),
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
    dependencies = [
        ("trading", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
