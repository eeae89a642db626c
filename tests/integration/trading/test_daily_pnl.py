"""The daily PnL across 00:00 UTC with a position open: before midnight, today's realized PnL
and the position's whole unrealized PnL; after it, the realized PnL since 00:00 plus the change of
unrealized PnL since the 00:00 mark. One number, wherever it is read."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine
from prometheus_client.parser import text_string_to_metric_families

from controlpanel.dashboard import sections
from tests.integration.trading.conftest import bars_at
from tests.support.exchange_answers import new_order, report, trade
from trading.ledger import services as ledger
from trading.marketdata.prices import latest_prices, record_bars
from trading.models import DayOpen, RiskLimits
from trading.risk import services as risk

pytestmark = pytest.mark.django_db(transaction=True)

EVENING = datetime(2025, 9, 1, 23, 50, tzinfo=UTC)
MIDNIGHT = datetime(2025, 9, 2, tzinfo=UTC)


@pytest.fixture
def btc(market):
    """Sets BTCUSDT's latest quote: each call a bar closing a minute after the last."""
    first = bars_at(0)[0]
    minutes = iter(range(1, 10_000))

    def quote(price: str) -> None:
        later = first.close_time + timedelta(minutes=next(minutes))
        record_bars([dataclasses.replace(first, close=D(price), close_time=later)])

    return quote


def daily_pnl_everywhere(api, client) -> set[D]:
    """The daily PnL as the risk and portfolio APIs, the metric and the dashboard show it."""
    text = client.get("/services/exec-risk/metrics").content.decode()
    [gauge] = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "exec_risk_service_daily_pnl_usd"
    ]
    shown = {
        D(api.get("/api/v1/risk").json()["daily_pnl"]),
        D(api.get("/api/v1/portfolio").json()["daily_pnl"]),
        D(sections.build(["pnl"])["pnl"]["daily_pnl"]),
    }
    assert len(shown) == 1, shown
    assert gauge == float(next(iter(shown)))
    return shown


def test_the_daily_pnl_crosses_midnight_from_the_00_00_mark(api, client, btc):
    account = risk.get_account()
    with time_machine.travel(EVENING, tick=False):
        btc("100000")
        report(new_order(account, "BTCUSDT", "BUY", "0.1"), trade("0.1", "100000", "10"))
        report(new_order(account, "BTCUSDT", "SELL", "0.04"), trade("0.04", "101000", "4.04"))
        btc("101000")
        # Sold 0.04 for 40 more than it cost, 14.04 in fees; 0.06 held up 1,000 each.
        evening = D("40") - D("14.04") + D("0.06") * 1000
        assert daily_pnl_everywhere(api, client) == {evening}

    with time_machine.travel(MIDNIGHT + timedelta(seconds=30), tick=False):
        btc("101500")
        # The first read of the day marks the open: 0.06 held, 1,500 up each.
        assert daily_pnl_everywhere(api, client) == {D(0)}
        assert DayOpen.objects.get(account=account, day=MIDNIGHT.date()).unrealized_pnl == 90

    with time_machine.travel(MIDNIGHT + timedelta(hours=2), tick=False):
        report(new_order(account, "BTCUSDT", "SELL", "0.03"), trade("0.03", "103000", "3.09"))
        btc("103000")
        realized_today = D("0.03") * 3000 - D("3.09")
        unrealized_now = D("0.03") * 3000
        assert daily_pnl_everywhere(api, client) == {realized_today + unrealized_now - 90}

        # A fall the unrealized PnL since the open says, and not the position's whole
        # unrealized PnL: down 10,000 a coin on 0.03 since the 00:00 mark's 1,500 up.
        btc("90000")
        after_fall = realized_today + D("0.03") * -10_000 - 90
        assert after_fall == D("-303.09")
        assert daily_pnl_everywhere(api, client) == {after_fall}
        assert risk.book_state(account, latest_prices()).daily_pnl == after_fall

        # The daily loss limit acts on that number: 303.09 reaches a limit of 300.
        RiskLimits.objects.filter(symbol="").update(daily_loss_limit=D("300"))
        change = risk.apply_automatic_state(account, latest_prices())
        assert change is not None and str(change.to_state) == "HALTED"
        assert api.get("/api/v1/risk").json()["state"] == "HALTED"
        # Without the open's mark it would have been 86.91 - 300 = -213.09: no halt.
        assert ledger.realized_since(account, MIDNIGHT) == realized_today


def test_a_day_open_is_kept_per_account_and_an_account_made_again_reads_its_own(market):
    from trading.models import Account

    marks = latest_prices()
    with time_machine.travel(MIDNIGHT + timedelta(hours=1), tick=False):
        first = Account.objects.create(name="again")
        assert ledger.day_open(first, marks) == 0
        reused = first.pk
        first.delete()  # its day open goes with it
    with time_machine.travel(MIDNIGHT + timedelta(hours=2), tick=False):
        second = Account.objects.create(pk=reused, name="again")
        DayOpen.objects.create(
            account=second, day=MIDNIGHT.date(), unrealized_pnl=D(7), recorded_at=MIDNIGHT
        )
        assert ledger.day_open(second, marks) == 7
        # Written once a day, never changed: read once.
        DayOpen.objects.filter(account=second).update(unrealized_pnl=D(8))
        assert ledger.day_open(second, marks) == 7
