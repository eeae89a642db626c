import django.db.models.deletion
from django.db import migrations, models

import trading.models


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0013_notifications"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="retired_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="MarketBar",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("symbol", models.CharField(max_length=20)),
                ("interval", models.CharField(max_length=4)),
                ("open_time", models.DateTimeField()),
                ("close_time", models.DateTimeField()),
                ("open", trading.models.ExactDecimalField()),
                ("high", trading.models.ExactDecimalField()),
                ("low", trading.models.ExactDecimalField()),
                ("close", trading.models.ExactDecimalField()),
                ("volume", trading.models.ExactDecimalField()),
                ("quote_volume", trading.models.ExactDecimalField()),
                ("trades", models.PositiveIntegerField(default=0)),
                (
                    "origin",
                    models.CharField(
                        choices=[("seed", "Seed"), ("replay", "Replay"), ("binance", "Binance")],
                        max_length=8,
                    ),
                ),
                ("stored_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["symbol", "open_time"],
                "indexes": [
                    models.Index(
                        fields=["symbol", "interval", "close_time"],
                        name="market_bar_close",
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("symbol", "interval", "open_time"), name="market_bar_unique"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="SignalScore",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("model_version", models.CharField(db_index=True, max_length=80)),
                ("symbol", models.CharField(max_length=20)),
                (
                    "side",
                    models.CharField(choices=[("BUY", "Buy"), ("SELL", "Sell")], max_length=4),
                ),
                ("probability_up", models.FloatField()),
                ("confidence", models.FloatField()),
                (
                    "bucket",
                    models.PositiveSmallIntegerField(
                        help_text="confidence bucket, 0 for 0.50-0.55"
                    ),
                ),
                (
                    "bar_close_time",
                    models.DateTimeField(help_text="close of the bar the signal was made on"),
                ),
                (
                    "due_close_time",
                    models.DateTimeField(help_text="close of the bar at the horizon"),
                ),
                ("entry_price", trading.models.ExactDecimalField()),
                ("exit_price", trading.models.ExactDecimalField(blank=True, null=True)),
                ("up", models.BooleanField(help_text="the label: did the close rise?", null=True)),
                ("hit", models.BooleanField(help_text="was the side right?", null=True)),
                (
                    "forward_return",
                    models.FloatField(help_text="net of fees and slippage", null=True),
                ),
                ("brier", models.FloatField(null=True)),
                ("log_loss", models.FloatField(null=True)),
                ("scored_at", models.DateTimeField(blank=True, null=True)),
                (
                    "signal",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="scores",
                        to="trading.signal",
                    ),
                ),
            ],
            options={
                "ordering": ["-bar_close_time"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("signal", "model_version"),
                        name="one_score_per_signal_and_version",
                    )
                ],
                "indexes": [
                    models.Index(
                        condition=models.Q(("scored_at__isnull", True)),
                        fields=["symbol", "due_close_time"],
                        name="score_pending",
                    ),
                    models.Index(fields=["model_version", "bucket"], name="score_by_bucket"),
                ],
            },
        ),
    ]
