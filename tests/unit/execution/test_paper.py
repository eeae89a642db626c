"""The paper exchange's fill model: slippage, fees, volume caps, partial fills, tick and step."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.execution.paper import (
    Liquidity,
    PaperConfig,
    SimFill,
    bar_capacity,
    simulate_limit_fill,
    simulate_market_fill,
)
from trading.ledger.book import Side

BUY, SELL = Side.BUY, Side.SELL
DEFAULTS = PaperConfig()  # fees 0.1% maker and taker, 5 bps slippage, 10% of a bar's volume
TICK, STEP = D("0.01"), D("0.001")
# Distinct rates, so a test can tell which one was charged.
SPLIT_FEES = PaperConfig(maker_fee_rate=D("0.0002"), taker_fee_rate=D("0.0004"))


def market(side, quantity, close, volume, config=DEFAULTS, already_filled=D(0), tick=TICK):
    return simulate_market_fill(
        side, D(quantity), D(close), D(volume), config, D(already_filled), tick_size=tick,
        step_size=STEP,
    )  # fmt: skip


def limit(side, quantity, price, high, low, volume, config=DEFAULTS, already_filled=D(0)):
    return simulate_limit_fill(
        side, D(quantity), D(price), D(high), D(low), D(volume), config, D(already_filled),
        step_size=STEP,
    )  # fmt: skip


# -- market orders: price and fee ------------------------------------------------------------------


def test_a_market_buy_pays_the_close_plus_slippage_and_the_taker_fee():
    result = market(BUY, "0.5", "100.00", "1000")

    # 100 x (1 + 5 / 10 000) = 100.05, already on the 0.01 tick
    # fee 0.001 x 0.5 x 100.05 = 0.001 x 50.025 = 0.050025
    assert result == SimFill(D("0.5"), D("100.05"), D("0.050025"), D(0), Liquidity.TAKER)
    assert result.is_complete


def test_a_market_sell_gets_the_close_less_slippage():
    result = market(SELL, "0.5", "100.00", "1000")

    # 100 x (1 - 5 / 10 000) = 99.95; fee 0.001 x 0.5 x 99.95 = 0.049975
    assert result.price == D("99.95")
    assert result.fee == D("0.049975")


def test_the_slipped_price_is_rounded_to_the_tick_against_the_taker():
    # 123.45 x 0.0005 = 0.061725
    # buy:  123.45 + 0.061725 = 123.511725, rounded up to the cent: 123.52
    # sell: 123.45 - 0.061725 = 123.388275, rounded down to the cent: 123.38
    assert market(BUY, "1", "123.45", "1000").price == D("123.52")
    assert market(SELL, "1", "123.45", "1000").price == D("123.38")
    # on a 0.5 tick, from 123.5: 123.5 x 0.0005 = 0.06175
    # buy 123.56175 up to 124.0; sell 123.43825 down to 123.0
    assert market(BUY, "1", "123.5", "1000", tick=D("0.5")).price == D("124.0")
    assert market(SELL, "1", "123.5", "1000", tick=D("0.5")).price == D("123.0")


def test_a_market_order_pays_the_taker_rate_not_the_maker_rate():
    result = market(BUY, "2", "100", "1000", config=SPLIT_FEES)
    # 0.0004 x 2 x 100.05 = 0.08004
    assert result.fee == D("0.08004")
    assert result.liquidity is Liquidity.TAKER


def test_a_sell_never_slips_below_one_tick():
    # 1 x (1 - 0.0005) = 0.9995, which a 1.00 tick would round down to 0
    assert market(SELL, "1", "1", "1000", tick=D("1")).price == D("1")


def test_no_slippage_fills_at_the_close():
    free = PaperConfig(slippage_bps=D(0), taker_fee_rate=D(0))
    assert market(BUY, "1", "250.37", "1000", config=free) == SimFill(
        D("1"), D("250.37"), D(0), D(0), Liquidity.TAKER
    )


# -- the volume cap and partial fills --------------------------------------------------------------


def test_a_large_order_fills_in_parts_across_bars_until_done():
    # each bar trades 20, so at most 10% x 20 = 2 fills per bar: 2 + 2 + 1 = 5
    remaining = D("5")
    fills = []
    for close in ("100", "101", "102"):
        result = market(BUY, remaining, close, "20")
        fills.append(result)
        remaining = result.remaining

    assert [f.quantity for f in fills] == [D("2"), D("2"), D("1")]
    assert [f.remaining for f in fills] == [D("3"), D("1"), D("0")]
    assert sum(f.quantity for f in fills) == D("5")
    # each part at its own bar's price: 100.05, 101.0505 -> 101.06, 102.051 -> 102.06
    assert [f.price for f in fills] == [D("100.05"), D("101.06"), D("102.06")]
    # fees 0.001 x (2 x 100.05, 2 x 101.06, 1 x 102.06) = 0.2001, 0.20212, 0.10206
    assert [f.fee for f in fills] == [D("0.2001"), D("0.20212"), D("0.10206")]


def test_orders_in_the_same_bar_share_its_volume_cap():
    # a bar of 20 allows 2 in all
    first = market(BUY, "1.5", "100", "20")
    second = market(SELL, "1", "100", "20", already_filled=first.quantity)
    third = market(BUY, "1", "100", "20", already_filled=first.quantity + second.quantity)

    assert first.quantity == D("1.5")
    assert second.quantity == D("0.5")  # 2 - 1.5
    assert second.remaining == D("0.5")
    assert third is None


def test_a_zero_volume_bar_fills_nothing():
    assert market(BUY, "1", "100", "0") is None
    assert limit(BUY, "1", "100", "101", "99", "0") is None


def test_the_capped_quantity_is_rounded_down_to_the_step():
    # 10% of 12.3456 is 1.23456; on a 0.001 step that is 1.234, leaving 2 - 1.234 = 0.766
    result = market(BUY, "2", "100", "12.3456")

    assert result.quantity == D("1.234")
    assert result.remaining == D("0.766")


def test_a_cap_smaller_than_one_step_fills_nothing():
    # 10% of 0.009 is 0.0009, under the 0.001 step
    assert market(BUY, "1", "100", "0.009") is None


def test_an_order_off_the_step_grid_is_refused():
    # a 0.0005 remainder could never fill on a 0.001 step
    with pytest.raises(ValueError, match="step size"):
        market(BUY, "1.2345", "100", "1000")


def test_bar_capacity_is_the_volume_share_less_what_was_filled():
    assert bar_capacity(D("20"), DEFAULTS) == D("2")
    assert bar_capacity(D("20"), DEFAULTS, D("0.5")) == D("1.5")
    assert bar_capacity(D("20"), DEFAULTS, D("3")) == 0  # never negative
    assert bar_capacity(D("20"), PaperConfig(max_volume_share=D("0.25"))) == D("5")


# -- limit orders ----------------------------------------------------------------------------------


def test_a_buy_limit_fills_at_its_price_with_the_maker_fee_when_the_bar_trades_below_it():
    result = limit(BUY, "2", "99.00", "101", "98.50", "1000", config=SPLIT_FEES)

    # at the limit, not at the low: 2 x 99 = 198 notional; fee 0.0002 x 198 = 0.0396
    assert result == SimFill(D("2"), D("99.00"), D("0.0396"), D(0), Liquidity.MAKER)


def test_a_sell_limit_fills_when_the_bar_trades_above_it():
    result = limit(SELL, "1", "105", "105.5", "100", "1000")

    # fee 0.001 x 1 x 105 = 0.105
    assert result.price == D("105")
    assert result.fee == D("0.105")


@pytest.mark.parametrize(
    ("side", "high", "low"),
    [
        (BUY, "101", "99"),  # the low touches a buy at 99 but does not trade through it
        (BUY, "101", "99.5"),  # never reaches it
        (SELL, "99", "95"),  # the high touches a sell at 99
        (SELL, "98", "95"),
    ],
)
def test_a_limit_the_bar_does_not_trade_through_does_not_fill(side, high, low):
    assert limit(side, "1", "99", high, low, "1000") is None


def test_a_limit_fill_is_capped_by_the_bar_volume_too():
    # 10% of 15 = 1.5 of the 4 ordered
    result = limit(BUY, "4", "99", "100", "98", "15")

    assert result.quantity == D("1.5")
    assert result.remaining == D("2.5")


def test_a_limit_bar_with_its_high_below_its_low_is_refused():
    with pytest.raises(ValueError, match="below"):
        limit(BUY, "1", "99", "98", "100", "1000")


# -- configuration and inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"maker_fee_rate": D("-0.001")},
        {"taker_fee_rate": D("1")},
        {"slippage_bps": D("-1")},
        {"max_volume_share": D("0")},
        {"max_volume_share": D("1.5")},
        {"taker_fee_rate": 0.001},  # a float
    ],
)
def test_a_config_refuses_nonsense(kwargs):
    with pytest.raises(ValueError):
        PaperConfig(**kwargs)


def test_market_fills_refuse_nonsense_inputs():
    with pytest.raises(ValueError):
        market(BUY, "0", "100", "1000")
    with pytest.raises(ValueError):
        market(BUY, "1", "100", "-1")
    with pytest.raises(ValueError):
        market("HOLD", "1", "100", "1000")
    with pytest.raises(ValueError):
        simulate_market_fill(BUY, D("1"), 100.0, D("10"), DEFAULTS, tick_size=TICK, step_size=STEP)


# -- properties ------------------------------------------------------------------------------------


steps = st.sampled_from([D("1"), D("0.1"), D("0.001"), D("0.00001")])
ticks = st.sampled_from([D("0.01"), D("0.1"), D("0.5"), D("1")])
bars = st.tuples(
    st.decimals(min_value=D("1"), max_value=D("100000"), places=2),  # close
    st.decimals(min_value=D("0"), max_value=D("1000"), places=3),  # volume
)
configs = st.builds(
    PaperConfig,
    maker_fee_rate=st.decimals(min_value=D("0"), max_value=D("0.01"), places=4),
    taker_fee_rate=st.decimals(min_value=D("0"), max_value=D("0.01"), places=4),
    slippage_bps=st.decimals(min_value=D("0"), max_value=D("100"), places=1),
    max_volume_share=st.decimals(min_value=D("0.01"), max_value=D("1"), places=2),
)


@given(
    st.sampled_from(Side),
    st.integers(min_value=1, max_value=10**6),
    steps,
    ticks,
    st.lists(bars, max_size=20),
    configs,
)
def test_market_fills_never_exceed_the_order_or_the_bar(side, units, step, tick, bar_list, config):
    ordered = units * step
    remaining = ordered
    total = D(0)
    for close, volume in bar_list:
        if remaining == 0:
            break
        result = simulate_market_fill(
            side, remaining, close, volume, config, tick_size=tick, step_size=step
        )
        if result is None:
            continue
        assert 0 < result.quantity <= config.max_volume_share * volume
        assert result.quantity % step == 0
        assert result.price % tick == 0
        assert (result.price >= close) if side is BUY else (result.price <= max(close, tick))
        assert result.fee == config.taker_fee_rate * result.quantity * result.price
        assert result.remaining == remaining - result.quantity
        total += result.quantity
        remaining = result.remaining
        assert total <= ordered
    assert total + remaining == ordered


@given(
    st.lists(st.tuples(st.sampled_from(Side), st.integers(min_value=1, max_value=10**4))),
    st.decimals(min_value=D("0"), max_value=D("1000"), places=3),
    configs,
)
def test_one_bar_never_fills_more_than_its_share_of_volume(orders, volume, config):
    filled_in_bar = D(0)
    for side, units in orders:
        quantity = units * D("0.01")
        result = simulate_market_fill(
            side, quantity, D("100"), volume, config, filled_in_bar, tick_size=TICK, step_size=STEP
        )
        if result is not None:
            assert result.quantity <= quantity
            filled_in_bar += result.quantity
    assert filled_in_bar <= config.max_volume_share * volume


@given(
    st.sampled_from(Side),
    st.integers(min_value=1, max_value=10**5),
    st.decimals(min_value=D("1"), max_value=D("1000"), places=2),
    st.lists(st.tuples(bars, st.decimals(min_value=D("0"), max_value=D("50"), places=2))),
)
def test_limit_fills_never_exceed_the_order_and_only_at_the_limit(side, units, price, bar_list):
    ordered = units * STEP
    remaining = ordered
    for (close, volume), spread in bar_list:
        if remaining == 0:
            break
        high, low = close + spread, max(close - spread, D("0.01"))
        result = simulate_limit_fill(
            side, remaining, price, high, low, volume, DEFAULTS, step_size=STEP
        )
        if result is None:
            continue
        assert result.price == price
        assert (low < price) if side is BUY else (high > price)
        assert 0 < result.quantity <= remaining
        remaining = result.remaining
    assert 0 <= remaining <= ordered
