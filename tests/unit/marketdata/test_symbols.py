from __future__ import annotations

import copy
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.marketdata.symbols import (
    BUNDLED_EXCHANGE_INFO,
    SymbolRules,
    load_bundled_rules,
    parse_exchange_info,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binance"
D = Decimal


def bundled_payload() -> dict:
    return json.loads(BUNDLED_EXCHANGE_INFO.read_text(encoding="utf-8"))


def payload_with_filters(*filters: dict, status: str = "TRADING") -> dict:
    return {
        "symbols": [
            {
                "symbol": "LTCBTC",
                "status": status,
                "baseAsset": "LTC",
                "quoteAsset": "BTC",
                "filters": list(filters),
            }
        ]
    }


# -- the bundled 2023 mainnet snapshot ----------------------------------------------------------


def test_the_bundled_rules_cover_btc_eth_and_sol_in_file_order():
    assert list(load_bundled_rules()) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def test_it_reads_every_btcusdt_filter_value_from_the_bundled_file():
    assert load_bundled_rules()["BTCUSDT"] == SymbolRules(
        symbol="BTCUSDT",
        status="TRADING",
        base_asset="BTC",
        quote_asset="USDT",
        tick_size=D("0.01"),
        step_size=D("0.00001"),
        min_qty=D("0.00001"),
        max_qty=D("9000"),
        market_step_size=D("0"),
        market_min_qty=D("0"),
        market_max_qty=D("169.00949758"),
        min_notional=D("10"),
        max_notional=D("9000000"),
        apply_min_to_market=True,
        apply_max_to_market=False,
    )


def test_it_reads_the_per_symbol_differences_in_the_bundled_file():
    rules = load_bundled_rules()
    assert rules["ETHUSDT"].step_size == D("0.0001")
    assert rules["ETHUSDT"].market_max_qty == D("3155.39389583")
    # SOLUSDT traded in 0.01 lots with a 5 USDT minimum in 2023 (0.001 lots today).
    assert rules["SOLUSDT"].step_size == D("0.01")
    assert rules["SOLUSDT"].max_qty == D("90000")
    assert rules["SOLUSDT"].min_notional == D("5")


def test_every_bundled_symbol_is_trading():
    assert all(r.is_trading for r in load_bundled_rules().values())


def test_callers_cannot_change_the_bundled_rules_seen_by_others():
    mine = load_bundled_rules()
    del mine["BTCUSDT"]
    assert "BTCUSDT" in load_bundled_rules()


def test_parse_keeps_the_symbol_order_of_the_payload():
    payload = bundled_payload()
    payload["symbols"].reverse()
    assert list(parse_exchange_info(payload)) == ["SOLUSDT", "ETHUSDT", "BTCUSDT"]


# -- the documentation example and older payloads ------------------------------------------------


def test_it_parses_the_doc_example_whose_filters_are_empty_as_no_rules():
    payload = json.loads((FIXTURES / "exchangeInfo.doc-example.json").read_text(encoding="utf-8"))
    rules = parse_exchange_info(payload)
    assert list(rules) == ["ETHBTC"]
    ethbtc = rules["ETHBTC"]
    assert (ethbtc.status, ethbtc.base_asset, ethbtc.quote_asset) == ("TRADING", "ETH", "BTC")
    assert ethbtc.tick_size == ethbtc.step_size == ethbtc.min_notional == D(0)
    assert ethbtc.max_notional is None
    assert ethbtc.round_price(D("0.0123456789")) == D("0.0123456789")


def test_it_reads_min_notional_from_the_pre_2023_min_notional_filter():
    payload = payload_with_filters(
        {
            "filterType": "MIN_NOTIONAL",
            "minNotional": "0.00100000",
            "applyToMarket": True,
            "avgPriceMins": 5,
        }
    )
    rules = parse_exchange_info(payload)["LTCBTC"]
    assert rules.min_notional == D("0.001")
    assert rules.apply_min_to_market is True
    assert rules.max_notional is None
    assert rules.apply_max_to_market is False


def test_the_notional_filter_wins_over_min_notional_when_both_are_present():
    payload = payload_with_filters(
        {"filterType": "MIN_NOTIONAL", "minNotional": "0.001", "applyToMarket": False},
        {
            "filterType": "NOTIONAL",
            "minNotional": "0.002",
            "applyMinToMarket": True,
            "maxNotional": "100",
            "applyMaxToMarket": True,
        },
    )
    rules = parse_exchange_info(payload)["LTCBTC"]
    assert (rules.min_notional, rules.max_notional) == (D("0.002"), D("100"))
    assert rules.apply_min_to_market and rules.apply_max_to_market


def test_it_reads_a_status_other_than_trading_as_not_trading():
    rules = parse_exchange_info(payload_with_filters(status="BREAK"))["LTCBTC"]
    assert rules.status == "BREAK"
    assert not rules.is_trading


def test_it_refuses_a_filter_value_that_is_not_a_number():
    payload = payload_with_filters(
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "lots", "stepSize": "0.001"}
    )
    with pytest.raises(ValueError, match=r"LTCBTC LOT_SIZE\.maxQty"):
        parse_exchange_info(payload)


def test_it_refuses_a_symbol_entry_without_a_status():
    payload = copy.deepcopy(bundled_payload())
    del payload["symbols"][0]["status"]
    with pytest.raises(ValueError, match="status"):
        parse_exchange_info(payload)


# -- rounding -----------------------------------------------------------------------------------


def test_round_price_rounds_down_to_the_tick():
    btc = load_bundled_rules()["BTCUSDT"]
    assert btc.round_price(D("29123.456789")) == D("29123.45")
    assert btc.round_price(D("29123.459")) == D("29123.45")


def test_round_price_leaves_a_price_on_the_tick_unchanged():
    btc = load_bundled_rules()["BTCUSDT"]
    assert btc.round_price(D("29123.45")) == D("29123.45")


def test_round_quantity_rounds_down_to_the_lot_step():
    btc = load_bundled_rules()["BTCUSDT"]
    assert btc.round_quantity(D("0.123456789"), market=False) == D("0.12345")
    assert load_bundled_rules()["SOLUSDT"].round_quantity(D("1.999"), market=False) == D("1.99")


def test_round_quantity_for_a_market_order_ignores_a_zero_market_step():
    btc = load_bundled_rules()["BTCUSDT"]
    assert btc.market_step_size == 0
    assert btc.round_quantity(D("0.123456789"), market=True) == D("0.12345")


def test_round_quantity_for_a_market_order_also_honours_a_coarser_market_step():
    rules = replace(load_bundled_rules()["SOLUSDT"], market_step_size=D("0.1"))
    assert rules.round_quantity(D("1.99"), market=True) == D("1.9")
    assert rules.round_quantity(D("1.99"), market=False) == D("1.99")


def test_round_quantity_below_one_step_gives_zero():
    btc = load_bundled_rules()["BTCUSDT"]
    assert btc.round_quantity(D("0.000009"), market=False) == 0


steps = st.sampled_from([D("1"), D("0.1"), D("0.01"), D("0.001"), D("0.00001"), D("0.00000001")])
quantities = st.decimals(min_value=D("0"), max_value=D("100000"), places=10)


@given(qty=quantities, step=steps)
def test_rounding_a_quantity_never_increases_it_and_lands_within_one_step(qty, step):
    rules = replace(load_bundled_rules()["BTCUSDT"], step_size=step)
    rounded = rules.round_quantity(qty, market=False)
    assert rounded <= qty
    assert qty - rounded < step
    assert rounded % step == 0


@given(price=quantities, tick=steps)
def test_rounding_a_price_lands_on_the_tick_below(price, tick):
    rules = replace(load_bundled_rules()["BTCUSDT"], tick_size=tick)
    rounded = rules.round_price(price)
    assert rounded <= price < rounded + tick
    assert rounded % tick == 0
