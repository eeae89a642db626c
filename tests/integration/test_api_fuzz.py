"""No input makes the API fail: generated requests (hypothesis, and schemathesis from the OpenAPI
schema the API serves) are answered below 500, and every refusal says why."""

from __future__ import annotations

import http.client
import io
import json
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis import GenerationMode

from tests.support.bus import Sent, record_sends
from trading import bus
from trading.api.parsers import JSONParser
from trading.api.serializers import SignalCreateSerializer
from trading.models import Order, Signal, TradingStateRecord

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = settings(
    max_examples=75,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def no_task_sending(monkeypatch) -> list[Sent]:
    """The API's hand-offs to the workers, recorded instead of queued: no worker runs here, and
    none started later should find a backlog of signals that no longer exist."""
    names = (bus.PROCESS_SIGNAL, bus.FLATTEN_POSITIONS, bus.RUN_SELFTEST, bus.RUN_BACKTEST)
    return record_sends(monkeypatch, *names)


@pytest.fixture
def api(olivia, market, no_task_sending) -> APIClient:
    """The operator, who may call everything."""
    client = APIClient()
    client.force_authenticate(olivia)
    return client


def says_why(body: object) -> bool:
    """A refusal names its reason: a ``detail``, or each bad field with its messages."""
    if not isinstance(body, dict) or not body:
        return False
    if "detail" in body:
        return isinstance(body["detail"], str) and bool(body["detail"].strip())
    return all(isinstance(field, str) and messages for field, messages in body.items())


def assert_answered(response) -> None:
    event(f"HTTP {response.status_code}")
    assert_says_why(response)


def assert_says_why(response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:2000])
    if 400 <= response.status_code < 500:
        assert response["Content-Type"].startswith("application/json"), response.content[:500]
        assert says_why(response.json()), response.content[:2000]


# --- hypothesis: bodies, queries and paths ----------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats()
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
number_texts = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["1e999999999", "-1e-999999999", "0x10", "1_000", " 5 ", "", "٣", "1e4300"]),
)
good_amounts = st.decimals(min_value=Decimal("0.0001"), max_value=10**5, places=4).map(str)
good_signals = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT", "btcusdt"]),
        "side": st.sampled_from(["BUY", "SELL"]),
        "confidence": st.decimals(0, 1, places=6).map(str) | st.floats(0, 1),
        "notional": good_amounts,
    },
    optional={
        "leverage": st.integers(1, 125),
        "stop_loss": good_amounts,
        "take_profit": good_amounts,
    },
)
bad_values = {
    "symbol": st.sampled_from(["DOGEBTC", " ", "x" * 50]) | json_values,
    "side": st.sampled_from(["buy", "HOLD", ""]) | json_values,
    "confidence": number_texts | json_values,
    "notional": number_texts | json_values,
    "quantity": number_texts | json_values,
    "leverage": st.integers() | number_texts | json_values,
    "stop_loss": number_texts | json_values,
    "take_profit": number_texts | json_values,
    "unknown": json_values,
}


@st.composite
def signal_bodies(draw) -> dict:
    """A good signal with up to three fields dropped or spoilt, so that both answers occur."""
    body = draw(good_signals)
    if draw(st.booleans()):
        body["quantity"] = body.pop("notional")
    for field in draw(st.sets(st.sampled_from(sorted(bad_values)), max_size=3)):
        if draw(st.booleans()):
            body.pop(field, None)
        else:
            body[field] = draw(bad_values[field])
    return body


@FUZZ
@given(body=signal_bodies())
def test_any_signal_is_accepted_or_refused_with_the_reason(api, body):
    before = Signal.objects.count()
    response = api.post("/api/v1/signals", json.dumps(body), content_type="application/json")
    assert_answered(response)
    assert response.status_code in (202, 400), response.content
    assert Signal.objects.count() == before + (response.status_code == 202)


@FUZZ
@given(
    path=st.sampled_from(["/api/v1/signals", "/api/v1/risk/halt", "/api/v1/risk/resume",
                          "/api/v1/selftest/runs"]),
    raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
    content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                  "multipart/form-data; boundary=x", "text/plain", ""]),
)  # fmt: skip
def test_any_raw_body_is_answered_with_the_reason(api, path, raw, content_type):
    assert_answered(api.generic("POST", path, raw, content_type=content_type))


@FUZZ
@given(
    path=st.sampled_from(["/api/v1/risk/halt", "/api/v1/risk/resume", "/api/v1/selftest/runs"]),
    body=st.dictionaries(
        st.sampled_from(["flatten", "reason", "suite"]) | st.text(max_size=8), json_values
    ),
)
def test_any_risk_or_selftest_request_is_answered_with_the_reason(api, path, body):
    response = api.post(path, json.dumps(body), content_type="application/json")
    assert_answered(response)


query_values = st.text(max_size=40) | number_texts | st.integers().map(str)


@FUZZ
@given(
    path=st.sampled_from(["/api/v1/signals", "/api/v1/orders", "/api/v1/positions",
                          "/api/v1/events", "/api/v1/selftest/runs", "/api/v1/portfolio",
                          "/api/v1/risk", "/api/v1/services"]),
    query=st.dictionaries(
        st.sampled_from(["symbol", "correlation_id", "status", "limit", "type", "since",
                         "until"]) | st.text(max_size=8),
        query_values,
        max_size=4,
    ),
)  # fmt: skip
def test_any_query_is_answered_with_the_reason(api, path, query):
    response = api.get(path, query)
    assert_answered(response)
    assert response.status_code in (200, 400), response.content


@FUZZ
@given(
    path=st.one_of(
        st.uuids().map(lambda u: f"/api/v1/signals/{u}"),
        st.integers(min_value=0).map(lambda n: f"/api/v1/selftest/runs/{n}"),
        st.integers(min_value=0, max_value=10**40).map(lambda n: f"/api/v1/selftest/runs/{n}"),
        st.integers(min_value=0, max_value=10**40).map(lambda n: f"/api/v1/backtests/{n}"),
        st.integers(min_value=0).map(lambda n: f"/api/v1/backtests/{n}/trades.csv"),
    )
)
def test_any_id_is_found_or_a_404_with_the_reason(api, path):
    response = api.get(path)
    assert_answered(response)
    assert response.status_code in (200, 404)


# --- the cases measured by hand: nesting, size, numbers and symbols -----------------------------

WRITE_PATHS = ["/api/v1/signals", "/api/v1/risk/halt", "/api/v1/risk/resume",
               "/api/v1/selftest/runs"]  # fmt: skip
DEPTH = 10_000
DEEP_BODIES = {
    "lists": "[" * DEPTH + "]" * DEPTH,
    "objects": '{"a":' * DEPTH + "1" + "}" * DEPTH,
    "just past the bound": '{"reason": ' + "[" * 33 + "]" * 33 + "}",
}


@pytest.mark.parametrize("path", WRITE_PATHS)
@pytest.mark.parametrize("shape", sorted(DEEP_BODIES))
def test_json_nested_too_deep_is_a_400_that_says_so_and_changes_nothing(api, path, shape):
    response = api.generic("POST", path, DEEP_BODIES[shape], content_type="application/json")
    assert response.status_code == 400, response.content[:500]
    assert_says_why(response)
    assert response.json()["detail"] == "JSON parse error - nested deeper than 32 levels"
    assert not Signal.objects.exists()
    assert not TradingStateRecord.objects.filter(state="HALTED").exists()


def test_json_nested_as_deep_as_allowed_is_read(api):
    reason = "[" * 31 + "]" * 31  # 32 levels with the object around it
    body = '{"reason": ' + reason + "}"
    response = api.generic("POST", "/api/v1/risk/halt", body, content_type="application/json")
    # Read, then refused by the serializer for what it is: a list is not a reason.
    assert response.status_code == 400
    assert "reason" in response.json()


LIMIT = 2_621_440  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, as the README states it
TOO_LARGE = {"detail": f"request body too large: the limit is {LIMIT} bytes"}


def post_raw(
    web_url: str, body, headers: dict[str, str], path: str = "/api/v1/signals"
) -> tuple[int, str, dict]:
    """POSTs to the real web server (gunicorn, as make run serves it) and reads the answer."""
    address = urlsplit(web_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        chunked = "Content-Length" not in headers
        connection.request("POST", path, body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), json.loads(response.read())
    finally:
        connection.close()


def test_a_ten_megabyte_body_is_a_413_naming_the_limit(web_url):
    from django.conf import settings as django_settings

    assert django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE == LIMIT
    body = b'{"reason": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    status, content_type, answer = post_raw(web_url, body, headers)
    assert (status, content_type, answer) == (413, "application/json", TOO_LARGE)


def test_a_chunked_body_over_the_limit_is_a_413_and_one_under_it_is_read(web_url, olivia):
    def chunks(total: int):
        yield b'{"reason": "'
        for _ in range(total // 65536):
            yield b"x" * 65536
        yield b'"}'

    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    status, content_type, answer = post_raw(web_url, chunks(10 * 1024 * 1024), headers)
    assert (status, content_type, answer) == (413, "application/json", TOO_LARGE)
    # A small chunked body is read, not taken for an empty one: its bad reason is refused.
    headers["Authorization"] = f"Token {Token.objects.create(user=olivia).key}"
    body = iter([b'{"reason": ', b'["not", "a", "string"]}'])
    status, _, answer = post_raw(web_url, body, headers, "/api/v1/risk/resume")
    assert (status, list(answer)) == (400, ["reason"]), answer


FULLWIDTH_20 = "\uff12\uff10"
ARABIC_INDIC_20 = "\u0662\u0660"
NOT_PLAIN_DECIMALS = [
    "1_000",
    FULLWIDTH_20,
    ARABIC_INDIC_20,
    " 20",
    "20 ",
    "1e3",
    "NaN",
    "-Infinity",
]


def signal_body(**changes) -> dict:
    body = {"symbol": "SOLUSDT", "side": "BUY", "confidence": "0.9", "notional": "20"}
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


@pytest.mark.parametrize("field", ["notional", "quantity", "confidence", "leverage", "stop_loss",
                                   "take_profit"])  # fmt: skip
@pytest.mark.parametrize("text", NOT_PLAIN_DECIMALS)
def test_a_number_not_written_in_plain_ascii_is_refused_naming_the_field(api, field, text):
    body = signal_body(**{field: text}, **({"notional": None} if field == "quantity" else {}))
    response = api.post("/api/v1/signals", body, format="json")
    assert response.status_code == 400, response.content
    assert_says_why(response)
    assert list(response.json()) == [field]
    assert repr(text) in response.json()[field][0]
    assert not Signal.objects.exists()
    assert not Order.objects.exists()


def test_a_symbol_is_read_in_ascii_only(api):
    response = api.post("/api/v1/signals", signal_body(symbol="\u017folusdt"), format="json")
    assert response.status_code == 400
    assert "LATIN SMALL LETTER LONG S" in response.json()["symbol"][0]
    assert not Signal.objects.exists()

    response = api.post("/api/v1/signals", signal_body(symbol="solusdt"), format="json")
    assert response.status_code == 202, response.content
    assert Signal.objects.get().symbol == "SOLUSDT"


def test_json_numbers_are_read_exactly_exponents_included(api):
    body = '{"symbol": "BTCUSDT", "side": "SELL", "confidence": 0.75, "quantity": 1e-3}'
    response = api.generic("POST", "/api/v1/signals", body, content_type="application/json")
    assert response.status_code == 202, response.content
    signal = Signal.objects.get()
    assert (signal.quantity, signal.confidence) == (Decimal("0.001"), Decimal("0.75"))

    # 20 significant digits, where a float keeps 17 (and SQLite's decimal column 15).
    body = body.replace('"quantity": 1e-3', '"notional": 12345678901.123456789')
    incoming = SignalCreateSerializer(data=JSONParser().parse(io.BytesIO(body.encode())))
    assert incoming.is_valid(), incoming.errors
    assert incoming.validated_data["notional"] == Decimal("12345678901.123456789")


def test_a_query_symbol_is_read_like_any_other(api):
    assert api.get("/api/v1/orders", {"symbol": "\u017folusdt"}).status_code == 400
    assert api.get("/api/v1/orders", {"symbol": "solusdt"}).status_code == 200
    assert api.get("/api/v1/orders", {"limit": FULLWIDTH_20}).status_code == 400


# --- schemathesis: every operation of the served schema ---------------------------------------


# Configured, so that the Alertmanager webhook answers for what it is sent, not for a missing
# setting (503 while unset).
@override_settings(ALERTMANAGER_TOKEN="fuzzing-token-" + "x" * 16)
def test_no_request_generated_from_the_served_schema_fails_the_api(olivia, market, no_task_sending):
    """Valid and invalid requests for every operation in the schema at /api/v1/schema, called
    through the WSGI application in this process (so on the test database) as the operator."""
    token = Token.objects.create(user=olivia).key
    auth = {"Authorization": f"Token {token}"}
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/schema?format=json", get_wsgi_application(), headers=auth
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/v1/signals", "/api/v1/risk/halt"}

    for operation in operations:
        # Only an operation that takes something (credentials aside) can be sent something invalid.
        takes_input = bool(
            list(operation.query) or list(operation.path_parameters) or operation.body
        )
        modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * takes_input
        for mode in modes:

            @settings(
                max_examples=25,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def answered(case):
                response = case.call(headers=auth)
                shown = f"{case.as_curl_command()}\n{response.status_code} {response.text[:2000]}"
                assert response.status_code < 500, shown
                # An id that is not one (a 404 from the URL resolver) has no API body to give.
                if 400 <= response.status_code < 500 and response.status_code != 404:
                    assert says_why(response.json()), shown

            answered()
