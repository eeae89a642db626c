"""What the management commands' options accept, read by the project's strict readers."""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import CommandError

from trading.primitives import InvalidInput, read_moment


def moment(text: str) -> datetime:
    """An option's ISO 8601 time with its zone; a ``CommandError`` saying why otherwise."""
    try:
        return read_moment(text)
    except InvalidInput as error:
        raise CommandError(str(error)) from None
