"""The ai and analytics schedules, editable afterwards in the admin (django-celery-beat)."""

from django.db import migrations

from trading.schedules import Schedule, add_schedules, remove_schedules

SCHEDULES = [
    Schedule("ai: turn new bars into signals", "trading.ai.tasks.drain_market_events", 5, "ai"),
    Schedule("ai: scheduled retraining", "trading.ai.tasks.retrain_model", 86_400, "ai"),
    Schedule(
        "analytics: portfolio snapshot",
        "trading.analytics.tasks.snapshot_performance",
        60,
        "analytics",
    ),
    Schedule("analytics: drift check", "trading.analytics.tasks.check_drift", 300, "analytics"),
    Schedule(
        "analytics: supervision sweep",
        "trading.analytics.tasks.supervise_services",
        15,
        "analytics",
    ),
    Schedule(
        "analytics: sizing multipliers", "trading.analytics.tasks.update_sizing", 300, "analytics"
    ),
    Schedule(
        "analytics: rebalancing", "trading.analytics.tasks.rebalance_portfolio", 60, "analytics"
    ),
]


class Migration(migrations.Migration):
    dependencies = [("trading", "0005_model_versions")]

    operations = [
        migrations.RunPython(
            lambda apps, editor: add_schedules(apps, SCHEDULES),
            lambda apps, editor: remove_schedules(apps, SCHEDULES),
        )
    ]
