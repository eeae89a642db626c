"""Operators act, viewers look: in the API, the admin and the dashboard; limit changes audited."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from trading.models import RiskLimits, RiskLimitsChange, Signal

pytestmark = pytest.mark.django_db(transaction=True)


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_viewer_reads_but_cannot_halt_resume_or_send_signals(victor, redis_server):
    api = api_for(victor)
    assert api.get("/api/v1/risk").status_code == 200
    assert api.get("/api/v1/positions").status_code == 200
    halt = api.post("/api/v1/risk/halt", {"reason": "no"}, format="json")
    assert halt.status_code == 403
    assert halt.json()["detail"] == "only operators may do this"
    assert api.post("/api/v1/risk/resume", {}, format="json").status_code == 403
    body = {"symbol": "BTCUSDT", "side": "BUY", "confidence": 0.9, "notional": "100"}
    assert api.post("/api/v1/signals", body, format="json").status_code == 403
    assert api.get("/api/v1/risk").json()["state"] == "ACTIVE"
    assert not Signal.objects.exists()


def test_an_operator_may_halt(olivia, redis_server):
    assert api_for(olivia).post("/api/v1/risk/halt", {}, format="json").status_code == 200


def test_the_dashboard_shows_the_emergency_stop_to_operators_only(client, olivia, victor):
    client.force_login(olivia)
    assert b'data-testid="emergency-stop"' in client.get("/").content
    client.force_login(victor)
    page = client.get("/")
    assert page.status_code == 200
    assert b'data-testid="emergency-stop"' not in page.content


def change_limits(client, limits: RiskLimits, **changes):
    form = {
        "symbol": limits.symbol,
        "min_confidence": limits.min_confidence,
        "max_position_notional": limits.max_position_notional,
        "max_total_exposure": limits.max_total_exposure,
        "max_leverage": limits.max_leverage,
        "max_open_positions": limits.max_open_positions,
        "daily_loss_limit": limits.daily_loss_limit,
        "max_drawdown": limits.max_drawdown,
        "max_orders_per_minute": limits.max_orders_per_minute,
        "allowed_symbols": limits.allowed_symbols,
        "changes-TOTAL_FORMS": "0",
        "changes-INITIAL_FORMS": "0",
        **changes,
    }
    return client.post(f"/admin/trading/risklimits/{limits.pk}/change/", form)


def test_an_operator_edits_limits_in_the_admin_and_every_change_is_audited(client, olivia):
    from trading.risk.services import global_limits

    limits = global_limits()
    client.force_login(olivia)
    response = change_limits(client, limits, max_position_notional="500", max_leverage="2")
    assert response.status_code == 302, response.content[:2000]
    limits.refresh_from_db()
    assert limits.max_position_notional == Decimal("500")
    changes = {c.field: c for c in RiskLimitsChange.objects.filter(limits=limits)}
    assert set(changes) == {"max_position_notional", "max_leverage"}
    assert changes["max_leverage"].old_value == "3"
    assert changes["max_leverage"].new_value == "2"
    assert changes["max_position_notional"].actor == "olivia"
    assert changes["max_position_notional"].scope == "global"


def test_the_admin_upper_cases_allowed_symbols_and_nothing_else(client, olivia):
    from trading.marketdata.services import refresh_symbol_rules
    from trading.risk.services import global_limits

    refresh_symbol_rules()
    limits = global_limits()
    client.force_login(olivia)
    response = change_limits(client, limits, allowed_symbols="btcusdt, ETHUSDT")
    assert response.status_code == 302, response.content[:2000]
    limits.refresh_from_db()
    assert limits.allowed_symbols == "BTCUSDT,ETHUSDT"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_position_notional": "-1"}, "max_position_notional"),
        ({"min_confidence": "1.5"}, "min_confidence"),
        ({"max_leverage": "200"}, "max_leverage"),
        ({"max_position_notional": "90000"}, "max_position_notional"),  # above total exposure
        ({"allowed_symbols": "BTCUSDT,DOGEBTC"}, "allowed_symbols"),
        # Read strictly: Django's own fields would take each of these as 1000, 20 or SOLUSDT.
        ({"daily_loss_limit": "1_000"}, "daily_loss_limit"),
        ({"max_total_exposure": "\uff12\uff10000"}, "max_total_exposure"),
        ({"max_open_positions": "\u0662\u0660"}, "max_open_positions"),
        ({"max_orders_per_minute": " 20"}, "max_orders_per_minute"),
        ({"allowed_symbols": "BTCUSDT,\u017folusdt"}, "allowed_symbols"),
    ],
)
def test_the_admin_refuses_bad_limits_and_changes_nothing(client, olivia, changes, field):
    from trading.marketdata.services import refresh_symbol_rules
    from trading.risk.services import global_limits

    refresh_symbol_rules()
    limits = global_limits()
    client.force_login(olivia)
    response = change_limits(client, limits, **changes)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert RiskLimits.objects.get(pk=limits.pk).max_position_notional == Decimal("10000")
    assert not RiskLimitsChange.objects.exists()


def test_a_viewer_cannot_change_limits_in_the_admin(client, victor):
    from trading.risk.services import global_limits

    victor.is_staff = True
    victor.save()
    limits = global_limits()
    client.force_login(victor)
    assert change_limits(client, limits, max_leverage="1").status_code == 403
    assert RiskLimits.objects.get(pk=limits.pk).max_leverage == 3


def test_a_symbol_row_overrides_per_symbol_limits_and_shows_the_account_wide_ones(client, olivia):
    from trading.marketdata.services import refresh_symbol_rules
    from trading.risk.services import global_limits, limits_for

    refresh_symbol_rules()
    base = global_limits()
    client.force_login(olivia)
    form = {
        "symbol": "BTCUSDT", "min_confidence": "0.9", "max_position_notional": "700",
        "max_leverage": "2",
        # Account-wide: a symbol row cannot hold values of its own for these.
        "max_total_exposure": "1", "max_open_positions": "1", "daily_loss_limit": "5",
        "max_drawdown": "0.5", "max_orders_per_minute": "1", "allowed_symbols": "BTCUSDT",
        "changes-TOTAL_FORMS": "0", "changes-INITIAL_FORMS": "0",
    }  # fmt: skip
    response = client.post("/admin/trading/risklimits/add/", form)
    assert response.status_code == 302, response.content[:2000]
    row = RiskLimits.objects.get(symbol="BTCUSDT")
    for field in RiskLimits.ACCOUNT_WIDE:
        assert getattr(row, field) == getattr(base, field), field
    limits = limits_for("BTCUSDT")
    assert (limits.min_confidence, limits.max_position_notional) == (Decimal("0.9"), 700)
    assert limits.daily_loss_limit == base.daily_loss_limit
    # On the symbol row's page the account-wide limits are shown, not offered for editing.
    page = client.get(f"/admin/trading/risklimits/{row.pk}/change/")
    fields = page.context["adminform"].form.fields
    assert "max_position_notional" in fields
    assert not set(RiskLimits.ACCOUNT_WIDE) & set(fields)
