"""An operator logs in and sees the dashboard shell with one live tile per service."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user("olivia", password="a long operator password")


def test_an_operator_logs_in_and_sees_every_service_ready(
    page: Page, web_url, operator, service_workers, ai_ready, artifacts
):
    page.goto(f"{web_url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("a long operator password")
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(f"{web_url}/")
    expect(page.get_by_role("heading", name="Services")).to_be_visible()
    for service in ("ai", "exec-risk", "analytics"):
        tile = page.locator(f'.tile[data-service="{service}"]')
        expect(tile).to_have_attribute("data-state", "ready", timeout=10_000)
        expect(tile.locator('[data-field="ready"]')).to_have_text("ready")
        expect(tile.locator('[data-field="workers"]')).to_contain_text("@tests")
    expect(page.get_by_role("button", name="Log out olivia")).to_be_visible()
    page.screenshot(path=str(artifacts / "dashboard-shell.png"), full_page=True)


def test_a_wrong_password_is_refused(page: Page, web_url, operator):
    page.goto(f"{web_url}/accounts/login/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("did not match")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
