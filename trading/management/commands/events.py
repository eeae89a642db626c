"""Print a window of the event log, or publish it again."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from trading.events.replay import read_window, republish


def _moment(value: str | None, name: str):
    if value is None:
        return None
    moment = parse_datetime(value)
    if moment is None or moment.tzinfo is None:
        raise CommandError(f"--{name} {value!r}: expected an ISO time with a zone, e.g. ...Z")
    return moment


class Command(BaseCommand):
    help = "Print events from the log as JSON lines (oldest first), or re-publish them."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--type", action="append", dest="types", help="repeatable")
        parser.add_argument("--since", help="ISO time, e.g. 2026-01-02T03:04:05Z")
        parser.add_argument("--until", help="ISO time")
        parser.add_argument("--correlation-id")
        parser.add_argument("--limit", type=int, default=100)
        parser.add_argument(
            "--republish",
            action="store_true",
            help="append copies with new event ids (replay_of names the original)",
        )

    def handle(self, *args, **options) -> None:
        try:
            window = read_window(
                types=options["types"],
                since=_moment(options["since"], "since"),
                until=_moment(options["until"], "until"),
                limit=options["limit"],
                correlation_id=options["correlation_id"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        if options["republish"]:
            copies = republish([event for _, event in window])
            self.stdout.write(f"re-published {len(copies)} events")
            return
        for stream_id, event in window:
            self.stdout.write(json.dumps(event.as_json(stream_id)))
