"""Bad input is a 400 naming the field and the reason, and leaves nothing behind."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trading.models import Order, Signal

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = {"symbol": "BTCUSDT", "side": "BUY", "confidence": 0.9, "notional": "100", "leverage": 1}


def without(field: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != field}


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({**GOOD, "symbol": "INVALIDUSDT"}, "symbol", "unknown symbol"),
        ({**GOOD, "notional": "-5"}, "notional", "greater than or equal"),
        ({**GOOD, "notional": "0"}, "notional", "greater than or equal"),
        ({**GOOD, "notional": "NaN"}, "notional", "NaN and infinity are not numbers"),
        (
            {**without("notional"), "quantity": "-0.1"},
            "quantity",
            "greater than or equal",
        ),
        ({**without("notional"), "quantity": "0"}, "quantity", "greater than or equal"),
        (
            {**without("notional"), "quantity": "nan"},
            "quantity",
            "NaN and infinity are not numbers",
        ),
        ({**GOOD, "confidence": 1.5}, "confidence", "less than or equal to 1"),
        ({**GOOD, "confidence": -0.1}, "confidence", "greater than or equal to 0"),
        ({**GOOD, "leverage": 0}, "leverage", "greater than or equal to 1"),
        ({**GOOD, "leverage": 1000}, "leverage", "less than or equal to 125"),
        ({**GOOD, "side": "HOLD"}, "side", "not a valid choice"),
        (without("symbol"), "symbol", "required"),
        (without("side"), "side", "required"),
        (without("confidence"), "confidence", "required"),
        (without("notional"), "notional", "exactly one of notional or quantity"),
        ({**GOOD, "quantity": "1"}, "notional", "exactly one of notional or quantity"),
    ],
)
def test_a_bad_signal_is_a_400_naming_the_field(api, body, field, says, redis_server):
    response = api.post("/api/v1/signals", body, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors, errors
    assert says in " ".join(errors[field]), errors
    assert not Signal.objects.exists() and not Order.objects.exists()


def test_a_body_that_is_not_json_is_a_400_and_the_service_keeps_serving(api, market):
    response = api.post("/api/v1/signals", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert not Signal.objects.exists()
    assert api.post("/api/v1/signals", GOOD, format="json").status_code == 202


def test_a_nan_literal_in_json_is_refused(api, redis_server):
    body = '{"symbol": "BTCUSDT", "side": "BUY", "confidence": NaN, "notional": "100"}'
    response = api.post("/api/v1/signals", body, content_type="application/json")
    assert response.status_code == 400
    assert "NaN" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/api/v1/orders", {"limit": 0}, "limit"),
        ("/api/v1/positions", {"limit": "many"}, "limit"),
        ("/api/v1/orders", {"correlation_id": "not-a-uuid"}, "correlation_id"),
        ("/api/v1/events", {"since": "yesterday"}, "since"),
        ("/api/v1/events", {"limit": 5000}, "limit"),
    ],
)
def test_bad_query_parameters_are_a_400_naming_the_parameter(api, redis_server, path, query, field):
    response = api.get(path, query)
    assert response.status_code == 400
    assert field in response.json()


def test_an_unknown_signal_is_a_404(api, redis_server):
    assert api.get("/api/v1/signals/00000000-0000-0000-0000-000000000000").status_code == 404


def test_the_api_refuses_anonymous_writes(client, redis_server):
    assert client.post("/api/v1/signals", GOOD, content_type="application/json").status_code in (
        401,
        403,
    )
    assert client.post("/api/v1/risk/halt", {}, content_type="application/json").status_code in (
        401,
        403,
    )
    assert not Signal.objects.exists()


def test_a_confidence_with_many_digits_is_kept_to_six(api, market):
    body = {**GOOD, "confidence": 0.87345678912}
    response = api.post("/api/v1/signals", body, format="json")
    assert response.status_code == 202, response.content
    assert Signal.objects.get().confidence == Decimal("0.873457")
