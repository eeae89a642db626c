"""Nothing answers an anonymous caller but health, readiness, metrics and the login page; viewers
look and operators act; CSRF on session writes; logins throttled; metrics behind an optional
bearer token; production settings pass ``check --deploy``; secrets stay out of the logs."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client, override_settings
from django.urls import URLResolver, get_resolver
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern
from hypothesis import HealthCheck, find
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from controlpanel.asgi import application
from controlpanel.dashboard.routing import websocket_urlpatterns
from tests.support.bus import Sent, record_sends
from trading import bus
from trading.models import SelfTestRun, Signal

pytestmark = pytest.mark.django_db(transaction=True)

REPO = settings.BASE_DIR
# The dashboard page's own origin, the only one its websocket accepts.
PAGE_ORIGIN = f"http://localhost:{settings.WEB_PORT}".encode()

# Routes (as Django's resolver names them) that answer without a login. Everything else the
# resolver knows must refuse an anonymous caller.
PUBLIC_ROUTES = {
    "health",
    "ready",
    "metrics",
    "services/<str:service>/health",
    "services/<str:service>/ready",
    "services/<str:service>/metrics",
    "accounts/login/",
    "admin/login/",
    # Logging out needs no session: it ends whatever there is and goes back to the login page.
    "accounts/logout/",
    "admin/logout/",
}
LOGIN_PAGES = ("/accounts/login/", "/admin/login/")


# --- URL patterns, from the resolver ----------------------------------------------------------


def url_chains(patterns: Sequence | None = None, chain: tuple = ()) -> Iterator[tuple]:
    """Every endpoint the resolver knows, as the chain of patterns that leads to it."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from url_chains(pattern.url_patterns, (*chain, pattern.pattern))
        else:
            yield (*chain, pattern.pattern)


def route_of(chain: tuple) -> str:
    """The route a ResolverMatch reports for a path that ends at this chain."""
    route = ""
    for part in chain:
        route = route + str(part).removeprefix("^") if route else str(part)
    return route


def sample_path(chain: tuple, resolver: URLResolver) -> str:
    """A path that the resolver sends to this chain's endpoint: the simplest string matching
    its patterns (sample values for the converters and groups) that lands there."""
    regex = "".join(
        part.regex.pattern.removeprefix("^").removesuffix(r"\Z").removesuffix("$") for part in chain
    )
    route = route_of(chain)

    def lands_here(path: str) -> bool:
        if not (path.isascii() and path.isprintable()) or set(path) & set("?#% \\"):
            return False
        try:
            return resolver.resolve("/" + path).route == route
        except Resolver404:
            return False

    quick = hypothesis_settings(
        database=None, max_examples=5000, suppress_health_check=list(HealthCheck)
    )
    return "/" + find(st.from_regex(regex, fullmatch=True), lands_here, settings=quick)


def http_endpoints() -> list[tuple[str, str]]:
    """(route, sample path) of every HTTP endpoint."""
    return [(route_of(c), sample_path(c, get_resolver())) for c in url_chains()]


def refused(response) -> bool:
    """401 or 403, or a redirect to a login page."""
    if response.status_code in (401, 403):
        return True
    location = response.headers.get("Location", "")
    return response.status_code == 302 and location.startswith(LOGIN_PAGES)


def test_every_page_and_api_endpoint_refuses_anonymous_callers(redis_server):
    endpoints = http_endpoints()
    routes = {route for route, _ in endpoints}
    # The list of exceptions names endpoints that exist, and the walk reached the API and admin.
    assert PUBLIC_ROUTES <= routes, PUBLIC_ROUTES - routes
    assert {"api/v1/signals", "api/v1/risk/halt", "", "admin/"} <= routes
    anonymous = Client()
    answered = []
    for route, path in endpoints:
        if route in PUBLIC_ROUTES:
            continue
        for method in ("get", "post"):
            response = getattr(anonymous, method)(path)
            if not refused(response):
                answered.append(f"{method.upper()} {path} ({route}): {response.status_code}")
    assert not answered, "answered an anonymous caller:\n" + "\n".join(answered)


def test_password_reset_is_not_offered(client):
    assert client.get("/accounts/password_reset/").status_code == 404


def test_health_readiness_metrics_and_login_answer_anonymous_callers(client, redis_server):
    for path in ("/health", "/ready", "/metrics", "/services/ai/metrics", "/accounts/login/"):
        assert client.get(path).status_code == 200, path
    for path in ("/services/ai/health", "/services/ai/ready"):
        # No worker runs here: the answer is the service's state, not a login page.
        assert client.get(path)["Content-Type"] == "application/health+json", path
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"


def test_every_websocket_closes_on_an_anonymous_caller(redis_server):
    resolver = URLResolver(RegexPattern(r"^/"), websocket_urlpatterns)
    paths = [sample_path((p.pattern,), resolver) for p in websocket_urlpatterns]
    assert "/ws/dashboard/" in paths

    async def close_code(path: str):
        socket = WebsocketCommunicator(
            application, path, headers=[(b"origin", PAGE_ORIGIN), (b"host", b"localhost")]
        )
        connected, _ = await socket.connect()
        assert connected
        message = await socket.receive_output(timeout=5)
        await socket.wait()
        return message

    for path in paths:
        assert asyncio.run(close_code(path)) == {"type": "websocket.close", "code": 4401}, path


# --- Operators act, viewers look ----------------------------------------------------------------

WRITES = [
    ("/api/v1/signals", {"symbol": "BTCUSDT", "side": "BUY", "confidence": 0.9, "notional": "100"}),
    ("/api/v1/risk/halt", {"reason": "test"}),
    ("/api/v1/risk/resume", {"reason": "test"}),
    ("/api/v1/selftest/runs", {"suite": "integration"}),
]


@pytest.fixture
def no_task_sending(monkeypatch) -> list[Sent]:
    """The API's hand-offs to the workers, recorded instead of queued: no worker runs here."""
    names = (bus.PROCESS_SIGNAL, bus.FLATTEN_POSITIONS, bus.RUN_SELFTEST)
    return record_sends(monkeypatch, *names)


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize(("path", "body"), WRITES, ids=[path for path, _ in WRITES])
def test_a_viewer_is_refused_every_write(victor, market, no_task_sending, path, body):
    response = api_for(victor).post(path, body, format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == "only operators may do this"
    assert not no_task_sending
    assert not Signal.objects.exists() and not SelfTestRun.objects.exists()
    assert api_for(victor).get("/api/v1/risk").json()["state"] == "ACTIVE"


def test_an_operator_may_do_every_write(olivia, market, no_task_sending):
    api = api_for(olivia)
    answers = {path: api.post(path, body, format="json").status_code for path, body in WRITES}
    assert answers == {
        "/api/v1/signals": 202,
        "/api/v1/risk/halt": 200,
        "/api/v1/risk/resume": 200,
        "/api/v1/selftest/runs": 202,
    }
    assert Signal.objects.count() == 1 and SelfTestRun.objects.count() == 1


# --- CSRF -------------------------------------------------------------------------------------


def csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize(("path", "body"), WRITES, ids=[path for path, _ in WRITES])
def test_a_session_write_without_the_csrf_token_is_refused(
    olivia, market, no_task_sending, path, body
):
    response = csrf_client(olivia).post(path, body, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not no_task_sending
    assert not Signal.objects.exists() and not SelfTestRun.objects.exists()


def test_a_session_write_with_the_csrf_token_passes(olivia, market, no_task_sending):
    client = csrf_client(olivia)
    client.get("/")  # the dashboard sets the CSRF cookie its script sends back
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    path, body = WRITES[0]
    response = client.post(
        path, body, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert response.status_code == 202
    assert [sent.task for sent in no_task_sending] == [bus.PROCESS_SIGNAL]


def test_a_token_write_needs_no_csrf_token(olivia, market, no_task_sending):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=olivia)
    client = Client(enforce_csrf_checks=True)
    path, body = WRITES[1]
    response = client.post(
        path, body, content_type="application/json", headers={"Authorization": f"Token {token.key}"}
    )
    assert response.status_code == 200


def test_the_login_form_wants_the_csrf_token(olivia):
    client = Client(enforce_csrf_checks=True)
    form = {"username": "olivia", "password": "operator password 1"}
    assert client.post("/accounts/login/", form).status_code == 403
    assert "_auth_user_id" not in client.session


# --- Login throttling -------------------------------------------------------------------------


def log_in(client: Client, path: str, password: str):
    return client.post(path, {"username": "olivia", "password": password})


@pytest.mark.parametrize("path", LOGIN_PAGES)
def test_logins_are_refused_after_repeated_failures_even_with_the_right_password(
    olivia, victor, path
):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, path, "wrong password").status_code == 200  # the form again
    locked = log_in(client, path, "wrong password")
    assert locked.status_code == 429
    assert b"too many login attempts" in locked.content
    right = log_in(client, path, "operator password 1")
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    # The lockout is for that username from that address: someone else there still logs in.
    other = Client()
    assert other.post(
        path, {"username": "victor", "password": "viewer password 1"}
    ).status_code in (
        200,  # the admin's form again: victor is no staff member
        302,
    )
    assert other.session.get("_auth_user_id") == str(victor.pk) or path == "/admin/login/"


def test_a_success_before_the_limit_resets_the_count(olivia):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "/accounts/login/", "wrong password")
    assert log_in(client, "/accounts/login/", "operator password 1").status_code == 302
    client.logout()
    assert log_in(client, "/accounts/login/", "wrong password").status_code == 200


def test_the_lockout_lifts_after_the_cool_off(olivia):
    import time_machine
    from django.utils import timezone

    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "/accounts/login/", "wrong password")
    assert log_in(client, "/accounts/login/", "operator password 1").status_code == 429
    later = timezone.now() + settings.AXES_COOLOFF_TIME + timezone.timedelta(seconds=1)
    with time_machine.travel(later):
        assert log_in(client, "/accounts/login/", "operator password 1").status_code == 302


# --- Metrics token ----------------------------------------------------------------------------

METRICS_PATHS = ("/metrics", "/services/ai/metrics", "/services/exec-risk/metrics")


def test_without_a_token_set_the_metrics_are_open(client, redis_server):
    assert not settings.METRICS_TOKEN
    for path in METRICS_PATHS:
        assert client.get(path).status_code == 200, path


def test_with_a_token_set_the_metrics_want_it_as_a_bearer_token(client, redis_server):
    token = secrets.token_urlsafe(32)
    wrong = [
        {},
        {"Authorization": token},
        {"Authorization": f"Token {token}"},
        {"Authorization": f"Bearer {token[:-1]}"},
        {"Authorization": f"Bearer {token}x"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer \u00e9t\u00e9"},
    ]
    with override_settings(METRICS_TOKEN=token):
        for path in METRICS_PATHS:
            for headers in wrong:
                response = client.get(path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response["WWW-Authenticate"].startswith("Bearer")
                assert token not in response.content.decode()
            right = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert right.status_code == 200, path
            assert b"# TYPE" in right.content
        for path in ("/health", "/ready", "/services/ai/health", "/services/ai/ready"):
            assert client.get(path).status_code != 401, path


def test_a_short_metrics_token_stops_the_platform():
    result = run_manage("check", QT_METRICS_TOKEN="short")
    assert result.returncode != 0
    assert "QT_METRICS_TOKEN is too short" in result.stderr


# --- Production settings ----------------------------------------------------------------------


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # tests/e2e/conftest.py lets Playwright's event loop share this process; no deployment does.
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deployment_checks():
    production = {
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "trader.example.com",
        "DJANGO_SECURE_COOKIES": "true",
        "DJANGO_SECURE_SSL_REDIRECT": "true",
        "DJANGO_HSTS_SECONDS": "31536000",
        "DJANGO_HSTS_PRELOAD": "true",
        "QT_METRICS_TOKEN": secrets.token_urlsafe(32),
    }
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **production)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    # The same check fails on the development defaults: it is a real check.
    development = {
        **dict.fromkeys(production, ""),
        "DJANGO_SECRET_KEY": production["DJANGO_SECRET_KEY"],
    }
    assert run_manage("check", "--deploy", "--fail-level", "WARNING", **development).returncode


@override_settings(SECURE_SSL_REDIRECT=True)
def test_the_ssl_redirect_spares_probes_and_scrapers(client, redis_server):
    assert client.get("/api/v1/risk").status_code == 301
    for path in ("/health", "/ready", "/metrics", "/services/ai/ready", "/services/ai/metrics"):
        assert client.get(path).status_code != 301, path


# --- Secrets never logged ---------------------------------------------------------------------


@pytest.fixture
def all_logs(caplog) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def test_passwords_never_reach_the_logs(olivia, all_logs):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        log_in(client, "/accounts/login/", "a wrong secret password")
    log_in(Client(), "/admin/login/", "operator password 1")
    # The failures were logged, naming who tried from where, but not with what.
    assert 'login failure by {username: "olivia", ip_address: "127.0.0.1"' in all_logs.text
    assert "a wrong secret password" not in all_logs.text
    assert "operator password 1" not in all_logs.text


def test_binance_credentials_never_reach_the_logs_or_the_repr(all_logs):
    from trading.execution.binance import BinanceConfig

    key, secret = secrets.token_hex(32), secrets.token_hex(32)
    config = BinanceConfig.from_env(
        {"BINANCE_MODE": "testnet", "BINANCE_API_KEY": key, "BINANCE_API_SECRET": secret}
    )
    logging.getLogger("tests").info("loaded %r", config)
    assert config.api_key == key and config.api_secret == secret
    for shown in (repr(config), str(config), all_logs.text):
        assert key not in shown and secret not in shown
    with pytest.raises(ValueError) as bad:
        BinanceConfig.from_env(
            {"BINANCE_MODE": "nope", "BINANCE_API_KEY": key, "BINANCE_API_SECRET": secret}
        )
    assert key not in str(bad.value) and secret not in str(bad.value)


def test_a_metrics_token_never_reaches_the_logs(client, redis_server, all_logs):
    token = secrets.token_urlsafe(32)
    with override_settings(METRICS_TOKEN=token):
        client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert "Unauthorized" in all_logs.text  # the refusal was logged, without the token
    assert token not in all_logs.text
