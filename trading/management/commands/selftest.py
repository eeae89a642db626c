"""Run the system checks against the running platform, one line per scenario."""

from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from trading.ledger.book import AccountKind
from trading.selftest.base import SUITES


class Command(BaseCommand):
    help = "Run the system checks (the original spec's integration and e2e suites)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--suite", choices=[*SUITES, "all"], default="all")
        parser.add_argument(
            "--account-kind",
            choices=list(AccountKind),
            default=AccountKind.SPOT,
            help="the kind of the sandbox account the checks trade on (default spot)",
        )

    def handle(self, *args, suite: str, account_kind: str, **options) -> None:
        from trading.selftest.runner import RunInProgress, run_suite, start_run

        failed = 0
        for name in SUITES if suite == "all" else [suite]:
            self.stdout.write(
                f"{name}: {len(SUITES[name])} scenarios on a {account_kind} sandbox account"
            )

            def show(result) -> None:
                line = f"{result.status:<4}  {result.name:<24} {result.duration_seconds:7.2f}s  "
                self.stdout.write(
                    line + result.detail.splitlines()[0][:160] if result.detail else line
                )

            try:
                run = start_run(name, trigger="cli", actor=getpass.getuser())
            except RunInProgress as busy:
                raise CommandError(str(busy)) from busy
            run = run_suite(run, show, account_kind=account_kind)
            failed += run.failed
            self.stdout.write(
                f"{name}: {run.passed} passed, {run.failed} failed, {run.skipped} skipped"
            )
        if failed:
            raise CommandError(f"{failed} system checks failed")
