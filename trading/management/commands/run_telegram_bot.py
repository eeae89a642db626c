"""The operators' Telegram bot, long polling (runs only with QT_TELEGRAM_BOT_TOKEN set)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Answers operators' Telegram commands (/status, /halt ...) from linked chats."

    def handle(self, *args, **options) -> None:
        from trading.notifications.bot import build_application

        if not settings.TELEGRAM_BOT_TOKEN:
            raise CommandError("QT_TELEGRAM_BOT_TOKEN is not set: the bot has nothing to run as")
        application = build_application(settings.TELEGRAM_BOT_TOKEN, settings.TELEGRAM_API_URL)
        self.stdout.write("telegram bot: polling for commands")
        # Old commands (sent while the bot was down) are dropped: a stale /halt is not acted on.
        application.run_polling(drop_pending_updates=True, close_loop=False)
