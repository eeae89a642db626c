from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from trading.risk import services as risk
from trading.risk.state import InvalidTransition


class Command(BaseCommand):
    help = "Resume trading after a halt or reduce-only period."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reason", default="resumed from the command line")
        parser.add_argument("--account", default="main")

    def handle(self, *args, reason: str, account: str, **options) -> None:
        book = risk.get_account(account)
        try:
            change = risk.resume_trading(book, actor=f"cli:{getpass.getuser()}", reason=reason)
        except InvalidTransition as refused:
            raise CommandError(str(refused)) from refused
        verb = "resumed" if change.changed else "already active"
        self.stdout.write(f"{book.name}: {verb} ({change.from_state} -> {change.to_state})")
