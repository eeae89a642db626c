"""exec-risk's metrics page exports the daily loss limit the risk limits configure, read at each
scrape: the daily-loss alerts compare the PnL with it, so they follow a limit edited in the
admin."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trading.models import RiskLimits

pytestmark = pytest.mark.django_db


def exported_daily_loss_limit(client) -> float:
    response = client.get("/services/exec-risk/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    (sample,) = families["exec_risk_service_daily_loss_limit_usd"].samples
    return sample.value


def test_the_exported_daily_loss_limit_follows_the_configured_one(client, redis_server):
    assert exported_daily_loss_limit(client) == 2000  # the global row's default
    RiskLimits.objects.filter(symbol="").update(daily_loss_limit=Decimal("512.25"))
    assert exported_daily_loss_limit(client) == 512.25


def test_a_symbol_s_own_limits_do_not_change_the_exported_daily_loss_limit(client, redis_server):
    # The daily loss limit halts the whole account, so only the global row's counts.
    RiskLimits.objects.create(symbol="", daily_loss_limit=Decimal("750"))
    RiskLimits.objects.create(symbol="BTCUSDT", daily_loss_limit=Decimal("10"))
    assert exported_daily_loss_limit(client) == 750
