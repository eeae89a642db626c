from __future__ import annotations

import getpass
import json

from django.core.management.base import BaseCommand

from trading.risk import services as risk


class Command(BaseCommand):
    help = "Emergency stop: halt trading (optionally closing every open position)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reason", default="emergency stop from the command line")
        parser.add_argument("--flatten", action="store_true", help="close every open position")
        parser.add_argument("--account", default="main")

    def handle(self, *args, reason: str, flatten: bool, account: str, **options) -> None:
        book = risk.get_account(account)
        change = risk.halt_trading(
            book, actor=f"cli:{getpass.getuser()}", reason=reason, flatten=flatten
        )
        verb = "halted" if change.changed else "already halted"
        self.stdout.write(f"{book.name}: {verb} ({change.from_state} -> {change.to_state})")
        self.stdout.write(json.dumps(risk.risk_summary(book)["limits"]))
