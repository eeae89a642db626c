"""Futures margin arithmetic: brackets, margins, available balance, liquidation price."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context
from decimal import Decimal as D

import pytest

from trading.ledger.book import Fill, PositionState, Side, apply_fill
from trading.ledger.futures import (
    Holding,
    bundled_brackets,
    grows_position,
    initial_margin,
    liquidation_price,
    margin_shortfall,
    margin_state,
    opening_quantity,
    parse_brackets,
)

T0 = datetime(2025, 9, 1, tzinfo=UTC)
BTC = bundled_brackets()["BTCUSDT"]
EXACT = Context(prec=50)


def position(quantity: str, price: str, symbol: str = "BTCUSDT") -> PositionState:
    side = Side.BUY if D(quantity) > 0 else Side.SELL
    fill = Fill(side=side, quantity=abs(D(quantity)), price=D(price), fee=D(0), ts=T0)
    return apply_fill(PositionState(symbol=symbol), fill)[0]


def test_the_bundled_brackets_cover_the_three_symbols_with_their_caps():
    brackets = bundled_brackets()
    assert set(brackets) == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    assert BTC.max_leverage == 125
    assert BTC.leverage_cap(125) == D(50000)
    assert BTC.leverage_cap(20) == D(10000000)
    assert brackets["ETHUSDT"].leverage_cap(76) == 0


@pytest.mark.parametrize(
    ("notional", "expected"),
    [
        ("10000", "40"),  # 0.4% in the first tier
        ("50000", "200"),  # the cap is in the first tier
        ("264000", "1340"),  # 264,000 x 1% - 1,300: Binance's FAQ example tier
        ("500000", "3700"),
        ("2000000", "33700"),  # 2.5% - 16,300
    ],
)
def test_maintenance_margin_follows_the_notional_tier(notional, expected):
    assert BTC.maintenance_margin(D(notional)) == D(expected)


def test_maintenance_margin_is_continuous_across_tier_boundaries():
    for tier, following in zip(BTC.tiers, BTC.tiers[1:], strict=False):
        cap = tier.notional_cap
        assert tier.maintenance_margin(cap) == following.maintenance_margin(cap)


def test_initial_margin_is_notional_over_leverage():
    assert initial_margin(D("30000"), 10) == D("3000")
    with pytest.raises(ValueError):
        initial_margin(D("1"), 0)


def test_available_balance_is_margin_balance_less_position_and_order_margin():
    long = Holding(position("1", "30000"), 10, BTC, D("29000"))
    state = margin_state(D("5000"), [long], open_order_margin=D("100"))
    assert state.unrealized_pnl == D("-1000")
    assert state.margin_balance == D("4000")
    assert state.initial_margin == D("2900")
    assert state.maintenance_margin == D("116")
    assert state.available_balance == D("1000")
    assert not state.liquidating


def test_liquidation_price_of_a_lone_long_matches_the_formula():
    # WB 1,000, 1 BTC long at 30,000, 0.4% tier: (1000 + 0 - 30000) / (0.004 - 1)
    long = Holding(position("1", "30000"), 30, BTC, D("30000"))
    price = liquidation_price(long, D("1000"))
    assert price == EXACT.divide(D("-29000"), D("-0.996"))
    at = margin_state(D("1000"), [Holding(long.state, 30, BTC, price)])
    # Equal up to the 50th digit of the division.
    assert abs(at.margin_balance - at.maintenance_margin) < D("1e-40")


def test_liquidation_price_of_a_short_is_above_its_entry():
    short = Holding(position("-1", "30000"), 30, BTC, D("30000"))
    price = liquidation_price(short, D("1000"))
    assert price == EXACT.divide(D("31000"), D("1.004"))
    assert price > D("30000")


def test_a_fully_funded_long_has_no_liquidation_price():
    long = Holding(position("1", "30000"), 1, BTC, D("30000"))
    assert liquidation_price(long, D("30000")) is None


def test_the_liquidation_price_uses_the_tier_of_the_notional_at_that_price():
    # 10 BTC at 30,000 is 300,000 (1% tier); at the liquidation price it is below 250,000.
    long = Holding(position("10", "30000"), 20, BTC, D("30000"))
    price = liquidation_price(long, D("60000"))
    assert BTC.tier(10 * price).bracket == 2
    at = margin_state(D("60000"), [Holding(long.state, 20, BTC, price)])
    assert abs(at.margin_balance - at.maintenance_margin) < D("1e-40")


def test_other_positions_move_the_liquidation_price():
    long = Holding(position("1", "30000"), 30, BTC, D("30000"))
    losing = Holding(position("-1", "30000"), 30, BTC, D("30500"))
    alone = liquidation_price(long, D("2000"))
    beside = liquidation_price(long, D("2000"), [losing])
    assert beside > alone


def test_the_margin_an_order_needs_counts_only_what_it_opens():
    assert opening_quantity(Side.SELL, D("3"), D("1")) == D("2")
    assert opening_quantity(Side.SELL, D("1"), D("2")) == 0
    assert grows_position(Side.SELL, D("1"), D("0"))
    assert not grows_position(Side.BUY, D("1"), D("-1"))
    assert margin_shortfall(Side.SELL, D("1"), D("30000"), held=D("1"), leverage=10,
                            fee_rate=D("0.0004"), available=D("12")) is None  # fmt: skip
    denial = margin_shortfall(Side.BUY, D("1"), D("30000"), held=D("0"), leverage=10,
                              fee_rate=D("0.0004"), available=D("3000"))  # fmt: skip
    assert denial is not None and "3012" in denial


def test_parse_brackets_reads_one_symbols_answer_and_refuses_garbage():
    tier = {"bracket": 1, "initialLeverage": 75, "notionalCap": 10000, "notionalFloor": 0,
            "maintMarginRatio": 0.0065, "cum": 0}  # fmt: skip
    one = {"symbol": "ETHUSDT", "brackets": [tier]}
    assert parse_brackets(one)["ETHUSDT"].max_notional == D(10000)
    with pytest.raises(ValueError):
        parse_brackets([{"symbol": "X"}])
