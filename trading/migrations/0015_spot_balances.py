"""Spot accounts: balances per asset (free and locked) instead of one cash total, the unrealized
PnL at each day's open, an account's kind, a signal that closes a position, and one order-status
enum.

Each account's balances are started from the fills already stored, worked out here as the ledger
works them out (a buy brings its base quantity in and pays its notional out of the quote, a sell
the other way round, fees are paid either way). Written out rather than imported, so that this
migration computes the same whatever the code becomes.
"""

from decimal import Context, Decimal

import django.db.models.deletion
from django.db import migrations, models

import trading.models

_EXACT = Context(prec=50)


def _assets(symbol_model, symbol: str) -> tuple[str, str]:
    row = symbol_model.objects.filter(symbol=symbol).first()
    if row is not None:
        return row.base_asset, row.quote_asset
    return symbol.removesuffix("USDT"), "USDT"


def start_asset_balances(apps, schema_editor) -> None:
    account_model = apps.get_model("trading", "Account")
    fill_model = apps.get_model("trading", "Fill")
    symbol_model = apps.get_model("trading", "Symbol")
    balance_model = apps.get_model("trading", "AssetBalance")
    for account in account_model.objects.all():
        totals: dict[str, Decimal] = {}
        fills = fill_model.objects.filter(order__account=account).values_list(
            "symbol", "side", "quantity", "price", "fee"
        )
        for symbol, side, quantity, price, fee in fills:
            base, quote = _assets(symbol_model, symbol)
            notional = _EXACT.multiply(quantity, price)
            moved = quantity if side == "BUY" else quantity.copy_negate()
            flow = _EXACT.subtract(notional.copy_negate() if side == "BUY" else notional, fee)
            totals[base] = _EXACT.add(totals.get(base, Decimal(0)), moved)
            totals[quote] = _EXACT.add(totals.get(quote, Decimal(0)), flow)
        for asset, net in totals.items():
            balance_model.objects.update_or_create(
                account=account, asset=asset, defaults={"net": net}
            )


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0014_bar_store_and_signal_scores"),
    ]

    operations = [
        migrations.AddField(
            model_name="account",
            name="kind",
            field=models.CharField(choices=[("spot", "spot")], default="spot", max_length=8),
        ),
        migrations.AddField(
            model_name="signal",
            name="close_position",
            field=models.BooleanField(
                default=False, help_text="sell (or buy back) what the position holds"
            ),
        ),
        migrations.AlterField(
            model_name="order",
            name="status",
            field=models.CharField(
                choices=[
                    ("NEW", "NEW"),
                    ("PARTIALLY_FILLED", "PARTIALLY_FILLED"),
                    ("FILLED", "FILLED"),
                    ("CANCELED", "CANCELED"),
                    ("REJECTED", "REJECTED"),
                    ("EXPIRED", "EXPIRED"),
                    ("UNKNOWN", "UNKNOWN"),
                ],
                default="NEW",
                max_length=20,
            ),
        ),
        migrations.AlterField(
            model_name="position",
            name="correlation_id",
            field=models.UUIDField(help_text="of the order that opened it"),
        ),
        migrations.CreateModel(
            name="AssetBalance",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("asset", models.CharField(max_length=12)),
                ("net", trading.models.ExactDecimalField(default=Decimal("0"), editable=False)),
                ("locked", trading.models.ExactDecimalField(default=Decimal("0"), editable=False)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="balances",
                        to="trading.account",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("account", "asset"), name="one_balance_per_asset"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="DayOpen",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField()),
                ("unrealized_pnl", trading.models.ExactDecimalField()),
                (
                    "marks",
                    models.JSONField(default=dict, help_text="the prices used, per symbol"),
                ),
                ("recorded_at", models.DateTimeField()),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="day_opens",
                        to="trading.account",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("account", "day"), name="one_day_open_per_day")
                ],
            },
        ),
        migrations.RunPython(start_asset_balances, migrations.RunPython.noop),
        migrations.DeleteModel(name="CashBalance"),
    ]
