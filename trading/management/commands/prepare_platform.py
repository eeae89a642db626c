"""Everything a fresh or upgraded platform needs before its processes start, safe to run again."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

# make run takes the same steps (deploy/run.py, training once its Redis answers); the deployment
# tests keep the two lists and docker-compose's init service in step.
STEPS = (
    ("migrate", "--noinput"),
    ("bootstrap_admin",),
    ("train_model", "--if-missing"),
)


class Command(BaseCommand):
    help = (
        "Migrate the database, create the first 'admin' (password from QT_ADMIN_PASSWORD or "
        "random, kept in --password-file) and train the first model unless one is stored."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--password-file",
            type=Path,
            default=settings.VAR_DIR / "admin-password",
            help="where the first admin password is kept (default: QT_VAR_DIR/admin-password)",
        )

    def handle(self, *args, password_file: Path, **options) -> None:
        password_file.parent.mkdir(parents=True, exist_ok=True)
        for name, *arguments in STEPS:
            if name == "bootstrap_admin":
                arguments += ["--password-file", str(password_file)]
                if os.environ.get("QT_ADMIN_PASSWORD"):
                    arguments += ["--password", os.environ["QT_ADMIN_PASSWORD"]]
            call_command(name, *arguments, verbosity=options["verbosity"], stdout=self.stdout)
