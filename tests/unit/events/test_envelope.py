import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, StrEnum

import pytest

from trading.events.envelope import Event, MalformedEvent, encode_payload, new_event

NOW = datetime(2025, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
EVENT_ID = "0b6f5a2e-8d4c-4f1a-9a7e-3c2b1d0e9f8a"


class Side(StrEnum):
    BUY = "BUY"


class Colour(Enum):
    RED = 1


def an_event(**changes) -> Event:
    fields = {
        "event_id": EVENT_ID,
        "type": "order.filled",
        "ts": NOW,
        "service": "exec-risk",
        "correlation_id": "sig-42",
        "schema": 2,
        "payload": {"symbol": "BTCUSDT", "qty": "0.015", "fills": [{"price": "64000.10"}]},
    }
    return Event(**{**fields, **changes})


def test_an_event_survives_the_round_trip_through_stream_fields():
    event = an_event()
    assert Event.from_fields(event.to_fields()) == event


def test_the_round_trip_works_on_bytes_as_a_client_without_decoding_returns_them():
    fields = {k.encode(): v.encode() for k, v in an_event().to_fields().items()}
    assert Event.from_fields(fields) == an_event()


def test_stream_fields_are_strings_with_iso_utc_time_and_compact_json_payload():
    fields = an_event().to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["ts"] == "2025-03-04T05:06:07.891234+00:00"
    assert fields["schema"] == "2"
    assert fields["payload"] == (
        '{"symbol":"BTCUSDT","qty":"0.015","fills":[{"price":"64000.10"}]}'
    )


def test_new_event_gets_a_random_uuid_the_given_time_and_an_encoded_payload():
    first = new_event(
        "order.filled",
        {"price": Decimal("64000.10"), "at": NOW},
        service="exec-risk",
        correlation_id="sig-1",
        now=NOW,
    )
    second = new_event("order.filled", {}, service="exec-risk", now=NOW)
    assert uuid.UUID(first.event_id).version == 4
    assert first.event_id != second.event_id
    assert first.ts == NOW
    assert first.schema == 1
    assert first.correlation_id == "sig-1"
    assert second.correlation_id == ""
    assert first.payload == {"price": "64000.10", "at": "2025-03-04T05:06:07.891234+00:00"}


def test_new_event_is_stamped_with_the_current_utc_time_by_default():
    before = datetime.now(UTC)
    event = new_event("market.bar", {}, service="feed")
    assert before <= event.ts <= datetime.now(UTC)
    assert event.ts.tzinfo == UTC


def test_a_time_in_another_zone_is_kept_as_the_same_instant_in_utc():
    paris = timezone(timedelta(hours=1))
    event = an_event(ts=datetime(2025, 3, 4, 6, 6, 7, tzinfo=paris))
    assert event.ts == datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert event.to_fields()["ts"] == "2025-03-04T05:06:07+00:00"


def test_encode_payload_turns_domain_values_into_json_that_reads_back_exactly():
    encoded = encode_payload(
        {
            "qty": Decimal("0.00012300"),
            "tiny": Decimal("1E-8"),
            "at": datetime(2025, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1))),
            "day": date(2025, 1, 2),
            "id": uuid.UUID(EVENT_ID),
            "side": Side.BUY,
            "colour": Colour.RED,
            "levels": (Decimal("1.5"), 2, None, True),
            "tags": {"b", "a"},
            "nested": {"pnl": Decimal("-3.20")},
        }
    )
    assert encoded == {
        "qty": "0.00012300",
        "tiny": "1E-8",
        "at": "2025-01-02T03:04:05+00:00",
        "day": "2025-01-02",
        "id": EVENT_ID,
        "side": "BUY",
        "colour": 1,
        "levels": ["1.5", 2, None, True],
        "tags": ["a", "b"],
        "nested": {"pnl": "-3.20"},
    }
    assert json.loads(json.dumps(encoded)) == encoded
    assert Decimal(encoded["qty"]) == Decimal("0.00012300")
    assert Decimal(encoded["tiny"]) == Decimal("0.00000001")


@pytest.mark.parametrize(
    ("payload", "error", "words"),
    [
        ({"at": datetime(2025, 1, 1)}, ValueError, "payload.at is a naive datetime"),
        ({"x": float("nan")}, ValueError, "payload.x is nan"),
        ({"x": Decimal("Infinity")}, ValueError, "payload.x is Infinity"),
        ({"x": [object()]}, TypeError, "payload.x[0] is of type object"),
        ({"x": {1: "one"}}, TypeError, "payload.x has a key 1"),
    ],
)
def test_encode_payload_refuses_what_json_cannot_carry_and_names_the_place(payload, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        encode_payload(payload)


def test_an_event_refuses_a_payload_that_was_not_encoded():
    with pytest.raises(MalformedEvent, match="not JSON-safe"):
        an_event(payload={"price": Decimal("1.5")})


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"event_id": "42"}, "event_id must be a UUID"),
        ({"event_id": EVENT_ID.upper()}, "canonical UUID"),
        ({"type": "Filled"}, "type must look like"),
        ({"type": ""}, "type must look like"),
        ({"ts": datetime(2025, 1, 1)}, "ts must be an aware datetime"),
        ({"service": "binance"}, "service must be one of"),
        ({"schema": 0}, "schema must be a positive integer"),
        ({"payload": ["a"]}, "payload must be a dict"),
    ],
)
def test_an_event_with_a_bad_field_is_refused_with_the_field_named(changes, words):
    with pytest.raises(MalformedEvent, match=words):
        an_event(**changes)


def broken(**changes) -> dict[str, str]:
    fields = an_event().to_fields()
    for name, value in changes.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = value
    return fields


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (broken(ts=None, payload=None), "missing fields: ts, payload"),
        (broken(ts="yesterday"), "ts is not an ISO 8601 datetime: 'yesterday'"),
        (broken(ts="2025-01-01T00:00:00"), "ts must be an aware datetime"),
        (broken(schema="one"), "schema is not an integer: 'one'"),
        (broken(payload="{not json"), "payload is not JSON"),
        (broken(payload="[1, 2]"), "payload must be a dict, got list"),
        # Python's json would read these; JSON cannot hold them.
        (broken(payload='{"x": NaN}'), "payload is not JSON: NaN"),
        (broken(payload='{"x": -Infinity}'), "payload is not JSON: -Infinity"),
        (broken(payload='{"x": 1e400}'), "payload is not JSON: 1e400 is out of range"),
        (broken(event_id="nope"), "event_id must be a UUID"),
        ({"junk": "1"}, "missing fields: event_id, type, ts"),
        ([("event_id", EVENT_ID)], "expected the fields of a stream entry"),
    ],
)
def test_malformed_stream_fields_raise_a_clear_error(fields, words):
    with pytest.raises(MalformedEvent, match=words):
        Event.from_fields(fields)


def test_extra_fields_such_as_a_dead_letters_are_ignored_when_reading():
    fields = {**an_event().to_fields(), "dead_error": "boom", "dead_group": "portfolio"}
    assert Event.from_fields(fields) == an_event()


def test_replay_of_names_the_original_only_for_a_replayed_event():
    assert an_event().replay_of is None
    assert an_event(payload={"replay_of": EVENT_ID}).replay_of == EVENT_ID
