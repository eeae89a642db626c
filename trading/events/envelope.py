"""The event envelope: one shape for every event the platform writes to its log.

An event is what happened, stamped with who said so and which trade it belongs to::

    Event(event_id, type, ts, service, correlation_id, schema, payload)

``correlation_id`` is born with a signal and carried by every event of that trade (order, fill,
position, learning); it is "" for events outside a trade (a market bar, a risk alert).
``schema`` is the version of the payload's shape for this ``type``; a producer bumps it when the
payload changes incompatibly, and consumers read the version they understand.

The payload is JSON: ``encode_payload`` turns the values the domain uses into JSON-safe ones,
so that the envelope round-trips through Redis unchanged:

==================  =========================================================================
``Decimal``         ``str(d)``: exact, trailing zeros kept; read back with ``Decimal(s)``
aware ``datetime``  ISO 8601 in UTC (``2025-01-02T03:04:05.123456+00:00``); naive is refused
``date``            ISO 8601 (``2025-01-02``)
``UUID``            its canonical string
``Enum``            its value
tuple, list, set    a list (a set sorted, so the encoding is stable)
mapping             an object; keys must be strings
``float``           as is; NaN and infinities are refused (not JSON)
==================  =========================================================================

Everything here is pure: no Django, no Redis.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

# Who may publish: the three trading services, the web process and the market feed.
EVENT_SERVICES = frozenset({"ai", "exec-risk", "analytics", "web", "feed"})

# "area.happening", lower case: market.bar, order.filled, selftest.result.
_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")

FIELDS = ("event_id", "type", "ts", "service", "correlation_id", "schema", "payload")


class MalformedEvent(ValueError):
    """The fields do not make a valid event; the message says which field and why."""


@dataclass(frozen=True)
class Event:
    """One event. Construction validates every field and normalises ``ts`` to UTC.

    The payload must already be JSON-safe (see ``encode_payload``); ``new_event`` encodes it.
    Treat the payload as read-only: the dataclass is frozen but a dict cannot be.
    """

    event_id: str
    type: str
    ts: datetime
    service: str
    correlation_id: str = ""
    schema: int = 1
    payload: dict[str, Any] = field(default_factory=dict)
    # True from from_fields only: its decoder has made sure the payload is JSON-safe already,
    # so the check that encodes it again (a fifth of the cost of reading an event) is skipped.
    _payload_checked: InitVar[bool] = False

    def __post_init__(self, _payload_checked: bool) -> None:
        try:
            parsed = uuid.UUID(self.event_id)
        except (TypeError, ValueError, AttributeError):
            raise MalformedEvent(f"event_id must be a UUID, got {self.event_id!r}") from None
        if str(parsed) != self.event_id:
            raise MalformedEvent(f"event_id must be a canonical UUID, got {self.event_id!r}")
        if not isinstance(self.type, str) or not _TYPE.fullmatch(self.type):
            raise MalformedEvent(f"type must look like 'order.filled', got {self.type!r}")
        if not isinstance(self.ts, datetime) or self.ts.utcoffset() is None:
            raise MalformedEvent(f"ts must be an aware datetime, got {self.ts!r}")
        object.__setattr__(self, "ts", self.ts.astimezone(UTC))
        if self.service not in EVENT_SERVICES:
            raise MalformedEvent(
                f"service must be one of {sorted(EVENT_SERVICES)}, got {self.service!r}"
            )
        if not isinstance(self.correlation_id, str):
            raise MalformedEvent(f"correlation_id must be a string, got {self.correlation_id!r}")
        if isinstance(self.schema, bool) or not isinstance(self.schema, int) or self.schema < 1:
            raise MalformedEvent(f"schema must be a positive integer, got {self.schema!r}")
        if not isinstance(self.payload, dict):
            raise MalformedEvent(f"payload must be a dict, got {type(self.payload).__name__}")
        if _payload_checked:
            return
        try:
            _dump(self.payload)
        except (TypeError, ValueError) as error:
            raise MalformedEvent(
                f"payload is not JSON-safe ({error}); use encode_payload"
            ) from None

    @property
    def replay_of(self) -> str | None:
        """The id of the event this one re-publishes (see ``trading.events.replay``), or None."""
        return self.payload.get("replay_of")

    def as_json(self, stream_id: str | None = None) -> dict[str, Any]:
        """The event as the API and the command line show it."""
        data: dict[str, Any] = {"stream_id": stream_id} if stream_id else {}
        return {
            **data,
            "event_id": self.event_id,
            "type": self.type,
            "ts": self.ts.isoformat(),
            "service": self.service,
            "correlation_id": self.correlation_id,
            "schema": self.schema,
            "payload": self.payload,
        }

    def to_fields(self) -> dict[str, str]:
        """The envelope as the flat string fields of a Redis stream entry (for XADD)."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "ts": self.ts.isoformat(),
            "service": self.service,
            "correlation_id": self.correlation_id,
            "schema": str(self.schema),
            "payload": _dump(self.payload),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str | bytes, str | bytes]) -> Event:
        """Reads an envelope written by ``to_fields``; raises MalformedEvent if it is not one.

        Fields other than the envelope's are ignored, so an entry of the dead-letter stream
        (the original fields plus ``dead_*`` ones) reads back as the original event.
        """
        if not isinstance(fields, Mapping):
            raise MalformedEvent(f"expected the fields of a stream entry, got {fields!r}")
        # str from a client that decodes responses, bytes from one that does not.
        text = {
            (k if type(k) is str else _text(k)): (v if type(v) is str else _text(v))
            for k, v in fields.items()
        }
        missing = [name for name in FIELDS if name not in text]
        if missing:
            raise MalformedEvent(f"missing fields: {', '.join(missing)}")
        try:
            ts = datetime.fromisoformat(text["ts"])
        except ValueError:
            raise MalformedEvent(f"ts is not an ISO 8601 datetime: {text['ts']!r}") from None
        try:
            schema = int(text["schema"])
        except ValueError:
            raise MalformedEvent(f"schema is not an integer: {text['schema']!r}") from None
        try:
            payload = _DECODER.decode(text["payload"])
        except ValueError as error:
            raise MalformedEvent(f"payload is not JSON: {error}") from None
        return cls(
            event_id=text["event_id"],
            type=text["type"],
            ts=ts,
            service=text["service"],
            correlation_id=text["correlation_id"],
            schema=schema,
            payload=payload,
            _payload_checked=True,
        )


def new_event(
    type: str,
    payload: Mapping[str, Any],
    *,
    service: str,
    correlation_id: str = "",
    now: datetime | None = None,
) -> Event:
    """A fresh event with a random id, stamped ``now`` (the current UTC time by default); the
    payload goes through ``encode_payload``."""
    return Event(
        event_id=str(uuid.uuid4()),
        type=type,
        ts=now if now is not None else datetime.now(UTC),
        service=service,
        correlation_id=correlation_id,
        payload=encode_payload(payload),
    )


def encode_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-safe copy of the payload, encoded as the table in the module docstring says.
    Raises TypeError for a value it cannot encode and ValueError for naive datetimes and
    non-finite floats."""
    if not isinstance(payload, Mapping):
        raise TypeError(f"a payload is a mapping, got {type(payload).__name__}")
    return _encode(payload, "payload")


def _encode(value: Any, path: str) -> Any:
    # bool is an int and StrEnum a str: both are already JSON, so these checks come first.
    if value is None or isinstance(value, bool | int | str):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{path} is {value}, which JSON cannot hold")
        return str(value)
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"{path} is a naive datetime; give it a time zone")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return _encode(value.value, path)
    if isinstance(value, Mapping):
        encoded = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has a key {key!r} that is not a string")
            encoded[key] = _encode(item, f"{path}.{key}")
        return encoded
    if isinstance(value, set | frozenset):
        items = [_encode(item, f"{path}[]") for item in value]
        return sorted(items, key=_dump)
    if isinstance(value, list | tuple):
        return [_encode(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{path} is of type {type(value).__name__}, which a payload cannot hold")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


# Python's json reads NaN, Infinity and numbers too large for a float, none of which JSON can
# hold: this decoder refuses them, so what it returns is JSON-safe as it is.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _dump(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise MalformedEvent(f"field is not UTF-8: {value!r}") from None
    if not isinstance(value, str):
        raise MalformedEvent(f"field is not a string: {value!r}")
    return value
