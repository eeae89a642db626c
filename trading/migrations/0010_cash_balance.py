"""Each account's cash as a running total of its fills, started from the fills already stored.

The total is worked out here as ``trading.risk.services.account_cash`` worked it out before it
read the running total: sells bring their notional in, buys pay it out, fees are paid either way,
over every fill of the account's orders. Written out rather than imported, so that this migration
computes the same whatever the code becomes.
"""

from decimal import Context, Decimal

import django.db.models.deletion
from django.db import migrations, models

import trading.models

_EXACT = Context(prec=50)


def fill_flows(fills) -> Decimal:
    total = Decimal(0)
    for side, quantity, price, fee in fills:
        notional = _EXACT.multiply(quantity, price)
        if side == "BUY":
            notional = notional.copy_negate()
        total = _EXACT.add(total, _EXACT.subtract(notional, fee))
    return total


def start_cash_balances(apps, schema_editor) -> None:
    account_model = apps.get_model("trading", "Account")
    fill_model = apps.get_model("trading", "Fill")
    balance_model = apps.get_model("trading", "CashBalance")
    for account in account_model.objects.all():
        fills = fill_model.objects.filter(order__account=account).values_list(
            "side", "quantity", "price", "fee"
        )
        balance_model.objects.update_or_create(
            account=account, defaults={"fill_flows": fill_flows(fills)}
        )


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0009_selftest_schedule"),
    ]

    operations = [
        migrations.CreateModel(
            name="CashBalance",
            fields=[
                (
                    "account",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="cash_balance",
                        serialize=False,
                        to="trading.account",
                    ),
                ),
                (
                    "fill_flows",
                    trading.models.ExactDecimalField(default=Decimal("0"), editable=False),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.RunPython(start_cash_balances, migrations.RunPython.noop),
    ]
