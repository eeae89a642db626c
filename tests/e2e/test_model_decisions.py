"""Operators promote a challenger and roll it back from the dashboard's model panel, audited
with their name; viewers see both versions side by side and no buttons. In Chromium against
gunicorn and uvicorn as make run serves them."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import log_in
from tests.support.oracle import oracle_artifact

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def challenger(trained_model, model_artifact):
    from trading.ai.services import store_model

    return store_model(oracle_artifact(model_artifact, "dashboard", {}, wrong=False), "test")


def test_an_operator_promotes_the_challenger_and_rolls_it_back_from_the_model_panel(
    page: Page, web_url, olivia, trained_model, challenger, artifacts
):
    from trading.ai.champion import champion
    from trading.models import ModelDecision

    log_in(page, web_url, "olivia", "operator password 1")
    panel = page.get_by_test_id("model-versions")
    expect(panel).to_be_visible(timeout=15_000)
    compare = page.get_by_test_id("model-compare")
    expect(compare).to_contain_text(trained_model.version)
    expect(compare).to_contain_text(challenger.version)
    expect(page.get_by_test_id("model-trial")).to_contain_text("waiting for judged pairs")
    expect(panel).to_contain_text("Promotion test: promote when the 95% confidence interval")
    promote, roll_back = page.get_by_test_id("promote-challenger"), page.get_by_test_id("roll-back")
    expect(roll_back).to_be_disabled()

    page.once("dialog", lambda dialog: dialog.accept())
    promote.click()
    result = page.get_by_test_id("model-action-result")
    expect(result).to_contain_text(f"{challenger.version} promoted by olivia")
    assert champion() == challenger
    decision = ModelDecision.objects.get(version=challenger.version, action="promoted")
    assert decision.actor == "olivia" and decision.champion == trained_model.version
    expect(promote).to_be_disabled()  # no challenger left on trial

    page.once("dialog", lambda dialog: dialog.accept())
    roll_back.click()
    expect(result).to_contain_text(f"{challenger.version} rolled back by olivia")
    expect(result).to_contain_text(f"{trained_model.version} serves")
    assert champion() == trained_model
    assert ModelDecision.objects.get(version=challenger.version, action="rolled_back").actor == (
        "olivia"
    )
    page.screenshot(path=str(artifacts / "model-decisions.png"), full_page=True)


def test_a_viewer_sees_both_versions_and_no_buttons(
    page: Page, web_url, victor, trained_model, challenger
):
    log_in(page, web_url, "victor", "viewer password 1")
    expect(page.get_by_test_id("model-compare")).to_contain_text(challenger.version, timeout=15_000)
    expect(page.get_by_test_id("promote-challenger")).to_have_count(0)
    expect(page.get_by_test_id("roll-back")).to_have_count(0)
