"""Backtest runs: the command, the stored run, and rule strategies on the live bar path."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.core.management import call_command

from trading.ai.services import generate_signal
from trading.events.envelope import new_event
from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.prices import record_bars
from trading.models import Account, BacktestRun, Signal, StrategyConfig
from trading.risk.services import get_account
from trading.store import redis_client, rkey

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_backtest_command_stores_the_run_with_its_report(capsys):
    StrategyConfig.objects.create(
        name="fast-sma",
        kind="sma_crossover",
        parameters={"fast": 5, "slow": 20},
        confidence=Decimal("0.8"),
    )
    bars = load_bundled_bars("BTCUSDT")
    call_command(
        "backtest",
        "--strategy",
        "fast-sma",
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--start",
        bars[0].open_time.isoformat(),
        "--end",
        bars[999].close_time.isoformat(),
        "--fee",
        "0.0005",
        "--slippage-bps",
        "2",
    )
    out, err = capsys.readouterr()
    run = BacktestRun.objects.get()
    assert run.status == "done" and run.progress == 1.0
    assert run.strategy_version == "sma_crossover(fast=5,slow=20,notional=1000)"
    assert run.settings["taker_fee_rate"] == "0.0005" and run.settings["slippage_bps"] == "2"
    assert run.code_version
    assert run.report["bars"] == 2000
    assert run.report["fills"] == len(run.fills) > 0
    assert json.loads(out[out.index("{") :])["trades"] == run.report["trades"]
    assert "2000/2000 bars" in err


def test_an_enabled_rule_strategy_sends_its_signals_on_the_live_bar_path(redis_server):
    account = get_account()
    config = StrategyConfig.objects.create(
        name="sma",
        kind="sma_crossover",
        parameters={"fast": 2, "slow": 5},
        confidence=Decimal("0.8"),
    )
    config.accounts.add(account)
    bars = load_bundled_bars("BTCUSDT")
    redis_client().delete(rkey("prices"), rkey("bars", "BTCUSDT"))
    for bar in bars[:80]:
        record_bars([bar])
        generate_signal(new_event("market.bar", bar.to_payload(), service="feed"))
    signals = Signal.objects.filter(source="strategy")
    assert signals.count() > 3
    assert set(signals.values_list("model_version", flat=True)) == {"sma"}
    assert {s.confidence for s in signals} == {Decimal("0.8")}
    assert not Signal.objects.filter(source="ai").exists()  # the ai model is not enabled
    assert Account.objects.get(pk=account.pk).strategies.get() == config


def test_the_admin_refuses_parameters_the_kind_cannot_run_with():
    from django.core.exceptions import ValidationError

    config = StrategyConfig(name="bad", kind="sma_crossover", parameters={"fast": 30, "slow": 9})
    with pytest.raises(ValidationError, match="fast"):
        config.full_clean()
