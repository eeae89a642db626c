from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from trading.risk import services as risk


class Command(BaseCommand):
    help = "Print the trading state, the risk limits and the recent state changes as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", default="main")

    def handle(self, *args, account: str, **options) -> None:
        self.stdout.write(json.dumps(risk.risk_summary(risk.get_account(account)), indent=2))
