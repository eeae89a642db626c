"""The ai and analytics schedules, editable afterwards in the admin (django-celery-beat)."""

from django.db import migrations

SCHEDULES = [
    # (name, task, every seconds, queue)
    ("ai: turn new bars into signals", "trading.ai.tasks.drain_market_events", 5, "ai"),
    ("ai: scheduled retraining", "trading.ai.tasks.retrain_model", 86_400, "ai"),
    (
        "analytics: portfolio snapshot",
        "trading.analytics.tasks.snapshot_performance",
        60,
        "analytics",
    ),
    ("analytics: drift check", "trading.analytics.tasks.check_drift", 300, "analytics"),
    ("analytics: supervision sweep", "trading.analytics.tasks.supervise_services", 15, "analytics"),
    ("analytics: sizing multipliers", "trading.analytics.tasks.update_sizing", 300, "analytics"),
    ("analytics: rebalancing", "trading.analytics.tasks.rebalance_portfolio", 60, "analytics"),
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
                "expire_seconds": min(seconds, 3600),
            },
        )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("trading", "0005_model_versions")]

    operations = [migrations.RunPython(create, remove)]
