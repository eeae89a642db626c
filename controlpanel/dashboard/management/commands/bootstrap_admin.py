"""Creates the first administrator account, once, so a fresh install can be logged into."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the 'admin' superuser if no superuser exists; print how to log in."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--password", help="the password to set (default: a random one)")
        parser.add_argument("--password-file", type=Path, help="where to keep the password")

    def handle(self, *args, password: str | None, password_file: Path | None, **options) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            if password_file and password_file.exists():
                self.stdout.write(f"log in as admin (first password kept in {password_file})")
            else:
                self.stdout.write("log in with your administrator account")
            return
        password = password or secrets.token_urlsafe(12)
        users.objects.create_superuser("admin", "", password)
        where = ""
        if password_file:
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            where = f" (kept in {password_file})"
        self.stdout.write(f"log in as admin with password {password}{where}")
