"""Logging in to the dashboard and calling the API over HTTP, for the Playwright tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from playwright.sync_api import Page, expect


def token_for(user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=user)[0].key


def api(web_url: str, user, path: str, body: dict | None = None) -> tuple[int, dict]:
    """Calls the API as ``user`` (with its token), from the test thread: over HTTP, so whatever
    the call publishes leaves from the server's process."""
    request = urllib.request.Request(
        f"{web_url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Token {token_for(user)}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def log_in(page: Page, web_url: str, username: str, password: str) -> None:
    page.goto(f"{web_url}/accounts/login/?next=/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{web_url}/")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-status", "live")
