from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0018_champion_and_challenger"),
    ]

    operations = [
        migrations.AddField(
            model_name="backtestrun",
            name="bars_done",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="backtestrun",
            name="bars_total",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
