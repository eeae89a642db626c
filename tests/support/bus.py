"""Work sent through ``trading.bus``, recorded instead of reaching a broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trading import bus


@dataclass(frozen=True)
class Sent:
    task: str
    args: tuple
    options: dict[str, Any] = field(default_factory=dict)


def record_sends(monkeypatch, *only: str) -> list[Sent]:
    """Records every task sent by name (or only those named in ``only``, the others going out as
    usual) for the rest of the test; returns the list it fills."""
    sent: list[Sent] = []
    send = bus.send

    def record(task: str, *args: Any, **options: Any):
        if only and task not in only:
            return send(task, *args, **options)
        sent.append(Sent(task, args, options))
        return None

    monkeypatch.setattr(bus, "send", record)
    return sent
