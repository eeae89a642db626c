"""The JSON API: session or token authentication, nothing for anonymous callers."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="correct horse battery")


def test_anonymous_callers_are_refused(client, redis_server):
    assert client.get("/api/v1/services").status_code in (401, 403)


def test_a_token_from_drf_create_token_opens_the_api(
    client, alice, service_workers, ai_ready, capsys
):
    call_command("drf_create_token", "alice")
    token = Token.objects.get(user=alice).key
    assert token in capsys.readouterr().out
    response = client.get("/api/v1/services", headers={"Authorization": f"Token {token}"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ai", "exec-risk", "analytics"}
    assert all(service["ready"] for service in body.values())


def test_a_logged_in_session_opens_the_api_and_the_dashboard(client, alice, redis_server):
    assert client.get("/").status_code == 302
    assert client.login(username="alice", password="correct horse battery")
    assert client.get("/api/v1/services").status_code == 200
    page = client.get("/")
    assert page.status_code == 200
    assert b'data-service="exec-risk"' in page.content


def test_the_openapi_schema_describes_the_api(client, alice, redis_server):
    client.force_login(alice)
    response = client.get("/api/v1/schema", headers={"Accept": "application/json"})
    assert response.status_code == 200
