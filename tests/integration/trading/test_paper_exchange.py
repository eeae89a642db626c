"""The paper exchange against the real Redis, fed the recorded bars that ship with the platform.

Each test writes under a key prefix of its own and deletes its keys afterwards. The config below
has a small volume share, so an ordinary order is bigger than one bar allows and fills in parts.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from uuid import uuid4

import pytest
import redis

from trading.execution.adapter import (
    Balance,
    ExchangeAdapter,
    ExchangeError,
    OrderRequest,
    OrderStatus,
    client_order_id_for,
)
from trading.execution.paper import PaperConfig
from trading.execution.paper_exchange import PaperExchange
from trading.marketdata.bars import datetime_to_ms
from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.prices import record_bars
from trading.marketdata.symbols import load_bundled_rules

NOW = datetime(2025, 8, 21, 0, 5, 1, tzinfo=UTC)
# 1% of a bar's volume; fees and slippage unlike the defaults, so a test that reads them from the
# wrong place fails.
CONFIG = PaperConfig(
    maker_fee_rate=Decimal("0.0002"),
    taker_fee_rate=Decimal("0.00075"),
    slippage_bps=Decimal("10"),
    max_volume_share=Decimal("0.01"),
)
RULES = load_bundled_rules()
ERROR_2010 = Path(__file__).parents[2] / "fixtures/binance/error.-2010.insufficient-balance.json"
BTC = load_bundled_bars("BTCUSDT")
ETH = load_bundled_bars("ETHUSDT")
SOL = load_bundled_bars("SOLUSDT")


@pytest.fixture
def prefix(settings, redis_client):
    settings.REDIS_PREFIX = f"t{uuid4().hex[:8]}"
    yield settings.REDIS_PREFIX
    keys = list(redis_client.scan_iter(f"{settings.REDIS_PREFIX}:*"))
    if keys:
        redis_client.delete(*keys)


# Enough for the large orders below; the balance tests start books of their own.
CASH = Decimal("1000000")


@pytest.fixture
def paper(prefix, redis_client) -> PaperExchange:
    return PaperExchange(CONFIG, client=redis_client, clock=lambda: NOW, starting_cash=CASH)


def order(symbol="BTCUSDT", side="BUY", quantity="0.6", name="signal-1") -> OrderRequest:
    return OrderRequest(
        symbol=symbol,
        side=side,
        order_type="MARKET",
        quantity=Decimal(quantity),
        client_order_id=client_order_id_for(name),
    )


def on_grid(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step


def capacity(bar) -> Decimal:
    """What CONFIG lets one bar fill: 1% of its volume, down to the symbol's step."""
    return on_grid(CONFIG.max_volume_share * bar.volume, RULES[bar.symbol].step_size, ROUND_FLOOR)


def taker_price(bar, side="BUY") -> Decimal:
    """The close moved 10 bps against the taker, rounded to the tick against the taker."""
    tick = RULES[bar.symbol].tick_size
    if side == "BUY":
        return on_grid(bar.close * Decimal("1.001"), tick, ROUND_CEILING)
    return on_grid(bar.close * Decimal("0.999"), tick, ROUND_FLOOR)


def balances_of(paper: PaperExchange) -> dict[str, Decimal]:
    return {b.asset: b.total for b in paper.balances()}


def test_the_paper_exchange_implements_the_exchange_interface(paper):
    assert isinstance(paper, ExchangeAdapter)


def test_a_market_order_fills_at_once_up_to_its_share_of_the_latest_bars_volume(paper):
    record_bars([BTC[0]])
    req = order(quantity="0.6")  # about 68,500 USDT, more than 1% of the bar's 27.3 BTC

    result = paper.place_order(req)

    assert capacity(BTC[0]) == Decimal("0.27296")
    assert result.status is OrderStatus.PARTIALLY_FILLED
    assert result.client_order_id == req.client_order_id
    assert (result.orig_quantity, result.executed_quantity) == (Decimal("0.6"), Decimal("0.27296"))
    [fill] = result.fills
    assert fill.quantity == Decimal("0.27296")
    assert fill.price == taker_price(BTC[0]) == Decimal("114311.82")
    assert fill.commission == Decimal("0.00075") * fill.quantity * fill.price
    assert fill.commission_asset == "USDT"
    assert result.cumulative_quote == fill.quantity * fill.price
    assert result.transact_time == NOW
    assert paper.query_order("BTCUSDT", req.client_order_id).status is OrderStatus.PARTIALLY_FILLED


def test_an_order_within_the_bars_share_fills_completely_at_once(paper):
    record_bars([SOL[0]])

    result = paper.place_order(order("SOLUSDT", quantity="5"))

    assert result.status is OrderStatus.FILLED
    assert result.executed_quantity == Decimal("5")
    assert [f.price for f in result.fills] == [taker_price(SOL[0])]
    assert paper.open_orders() == []


def test_the_rest_fills_on_later_bars_and_the_parts_add_up_to_the_order(paper):
    record_bars([BTC[0]])
    req = order(quantity="0.6")
    first = paper.place_order(req)

    [second] = paper.on_bar(BTC[1])
    [third] = paper.on_bar(BTC[2])

    parts = [first.fills[0], second.fills[0], third.fills[0]]
    assert [f.quantity for f in parts] == [
        capacity(BTC[0]),
        capacity(BTC[1]),
        Decimal("0.6") - capacity(BTC[0]) - capacity(BTC[1]),
    ]
    assert sum(f.quantity for f in parts) == req.quantity
    assert [f.price for f in parts] == [taker_price(bar) for bar in BTC[:3]]
    assert [f.commission for f in parts] == [
        CONFIG.taker_fee_rate * f.quantity * f.price for f in parts
    ]
    assert len({f.trade_id for f in parts}) == 3
    assert (second.status, third.status) == (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)
    assert third.executed_quantity == req.quantity
    assert third.cumulative_quote == sum(f.quantity * f.price for f in parts)
    stored = paper.query_order("BTCUSDT", req.client_order_id)
    assert (stored.status, stored.executed_quantity) == (OrderStatus.FILLED, req.quantity)
    assert stored.cumulative_quote == third.cumulative_quote
    # Filled: later bars leave it alone.
    assert paper.on_bar(BTC[3]) == []
    assert paper.open_orders() == []


def counting_client(url: str) -> tuple[redis.Redis, list[bytes]]:
    """A client of its own and the list of what it sends: one entry per round trip."""
    sent: list[bytes] = []

    class Counting(redis.Connection):
        def send_packed_command(self, command, check_health=True):
            sent.append(command)
            super().send_packed_command(command, check_health)

    pool = redis.ConnectionPool.from_url(url, connection_class=Counting, decode_responses=True)
    return redis.Redis(connection_pool=pool), sent


def test_a_market_order_is_placed_and_filled_in_four_round_trips(prefix, settings):
    client, sent = counting_client(settings.REDIS_URL)
    paper = PaperExchange(CONFIG, client=client, clock=lambda: NOW, starting_cash=CASH)
    record_bars([BTC[0]])
    paper.place_order(order(quantity="0.01", name="warm-up"))  # opens the pool's connections
    sent.clear()

    result = paper.place_order(order(quantity="0.01", name="counted"))

    client.close()
    assert result.status is OrderStatus.FILLED
    assert len(sent) <= 4  # the quote, then WATCH, the reads and MULTI/EXEC


class Raced(PaperExchange):
    """An exchange another process races: right after each of its first ``races`` reads, the
    other process fills ``other`` of the bar's volume."""

    def __init__(self, *args, used_key: str, other: Decimal, races: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.used_key, self.other, self.races = used_key, other, races

    def _reads(self):
        reads = super()._reads()
        execute = reads.execute

        def racing_execute():
            read = execute()
            if self.races:
                self.races -= 1
                self.client.incrbyfloat(self.used_key, float(self.other))
            return read

        reads.execute = racing_execute
        return reads


def raced_exchange(client, used_key: str, *, races: int) -> Raced:
    """An exchange whose first ``races`` decisions another process beats to 0.1 of the bar."""
    return Raced(CONFIG, client=client, clock=lambda: NOW, starting_cash=CASH,
                 used_key=used_key, other=Decimal("0.1"), races=races)  # fmt: skip


def test_an_order_takes_only_what_other_processes_leave_of_the_bar(prefix, redis_client):
    record_bars([BTC[0]])
    used_key = f"{prefix}:paper:used:BTCUSDT:{datetime_to_ms(BTC[0].close_time)}"
    raced = raced_exchange(redis_client, used_key, races=2)

    result = raced.place_order(order(quantity="0.6"))

    assert result.executed_quantity == capacity(BTC[0]) - Decimal("0.2") == Decimal("0.07296")
    assert Decimal(redis_client.get(used_key)) == capacity(BTC[0])


def test_a_rest_takes_only_what_other_processes_leave_of_a_later_bar(paper, prefix, redis_client):
    record_bars([BTC[0]])
    placed = paper.place_order(order(quantity="0.6"))
    used_key = f"{prefix}:paper:used:BTCUSDT:{datetime_to_ms(BTC[1].close_time)}"
    raced = raced_exchange(redis_client, used_key, races=1)

    [more] = raced.on_bar(BTC[1])

    assert more.fills[0].quantity == capacity(BTC[1]) - Decimal("0.1")
    assert more.executed_quantity == placed.executed_quantity + capacity(BTC[1]) - Decimal("0.1")
    assert Decimal(redis_client.get(used_key)) == capacity(BTC[1])


def test_a_sell_fills_below_the_close_by_the_slippage(paper):
    record_bars([ETH[0]])
    paper.place_order(order("ETHUSDT", quantity="2.5", name="signal-buy"))

    result = paper.place_order(order("ETHUSDT", side="SELL", quantity="2"))

    [fill] = result.fills
    assert fill.price == taker_price(ETH[0], "SELL") == Decimal("4322.94")
    assert fill.price < ETH[0].close
    assert fill.commission == Decimal("0.00075") * Decimal("2") * fill.price


def test_orders_in_the_same_bar_share_its_volume(paper):
    record_bars([BTC[0]])
    big = paper.place_order(order(quantity="0.2", name="signal-big"))
    small = paper.place_order(order(quantity="0.1", name="signal-small"))

    assert big.executed_quantity == Decimal("0.2")
    # Only 0.27296 - 0.2 is left in the bar for the second order.
    assert small.executed_quantity == capacity(BTC[0]) - Decimal("0.2") == Decimal("0.07296")
    assert small.status is OrderStatus.PARTIALLY_FILLED
    [rest] = paper.on_bar(BTC[1])
    assert rest.client_order_id == small.client_order_id
    assert rest.executed_quantity == Decimal("0.1")
    assert rest.fills[0].quantity == Decimal("0.02704")


def test_a_bar_already_used_up_fills_nothing_more(paper):
    record_bars([BTC[0]])
    req = order(quantity="0.6")
    paper.place_order(req)

    assert paper.on_bar(BTC[0]) == []

    stored = paper.query_order("BTCUSDT", req.client_order_id)
    assert stored.executed_quantity == capacity(BTC[0])


def test_a_second_order_with_the_same_client_order_id_is_refused_and_places_nothing(paper):
    record_bars([BTC[0]])
    req = order(quantity="0.1")
    paper.place_order(req)
    before = balances_of(paper)
    again = OrderRequest(
        symbol="BTCUSDT",
        side="SELL",
        order_type="MARKET",
        quantity=Decimal("0.05"),
        client_order_id=req.client_order_id,
    )

    with pytest.raises(ExchangeError) as refused:
        paper.place_order(again)

    assert refused.value.code == -2010
    assert not refused.value.retryable
    assert "Duplicate" in refused.value.message
    stored = paper.query_order("BTCUSDT", req.client_order_id)
    assert (stored.side, stored.orig_quantity, stored.executed_quantity) == (
        "BUY",
        Decimal("0.1"),
        Decimal("0.1"),
    )
    assert stored.status is OrderStatus.FILLED
    assert balances_of(paper) == before
    # The bar's volume was not used by the refused order: a new order gets all that is left.
    other = paper.place_order(order(quantity="0.5", name="signal-2"))
    assert other.executed_quantity == capacity(BTC[0]) - Decimal("0.1")


def test_a_second_order_with_the_id_of_an_open_order_is_refused_too(paper):
    record_bars([BTC[0]])
    req = order(quantity="0.6")
    paper.place_order(req)

    with pytest.raises(ExchangeError) as refused:
        paper.place_order(req)

    assert refused.value.code == -2010
    [still] = paper.open_orders()
    assert still.executed_quantity == capacity(BTC[0])


def test_query_order_answers_by_client_order_id_and_an_unknown_id_is_2013(paper):
    record_bars([BTC[0]])
    req = order(quantity="0.6")
    placed = paper.place_order(req)

    found = paper.query_order("BTCUSDT", req.client_order_id)

    assert found.exchange_order_id == placed.exchange_order_id
    assert (found.symbol, found.side) == ("BTCUSDT", "BUY")
    assert found.executed_quantity == placed.executed_quantity
    assert found.cumulative_quote == placed.cumulative_quote
    assert found.fills == ()  # a query reports totals, like Binance's
    with pytest.raises(ExchangeError) as missing:
        paper.query_order("BTCUSDT", client_order_id_for("never-placed"))
    assert (missing.value.code, missing.value.retryable) == (-2013, False)


def test_a_cancelled_order_keeps_its_fills_and_fills_no_further(paper):
    record_bars([BTC[0]])
    req = order(quantity="0.6")
    paper.place_order(req)

    cancelled = paper.cancel_order("BTCUSDT", req.client_order_id)

    assert cancelled.status is OrderStatus.CANCELED
    assert cancelled.client_order_id == req.client_order_id
    assert cancelled.executed_quantity == capacity(BTC[0])
    assert paper.open_orders() == []
    assert paper.on_bar(BTC[1]) == []
    stored = paper.query_order("BTCUSDT", req.client_order_id)
    assert (stored.status, stored.executed_quantity) == (OrderStatus.CANCELED, capacity(BTC[0]))
    with pytest.raises(ExchangeError) as again:
        paper.cancel_order("BTCUSDT", req.client_order_id)
    assert again.value.code == -2011


def test_a_filled_or_unknown_order_cannot_be_cancelled(paper):
    record_bars([SOL[0]])
    filled = order("SOLUSDT", quantity="1")
    paper.place_order(filled)

    with pytest.raises(ExchangeError) as done:
        paper.cancel_order("SOLUSDT", filled.client_order_id)
    with pytest.raises(ExchangeError) as unknown:
        paper.cancel_order("SOLUSDT", client_order_id_for("never-placed"))

    assert done.value.code == -2011
    assert unknown.value.code == -2013
    assert paper.query_order("SOLUSDT", filled.client_order_id).status is OrderStatus.FILLED


def test_open_orders_lists_the_working_orders_of_the_symbol_asked(paper):
    record_bars([BTC[0], ETH[0], SOL[0]])
    btc = paper.place_order(order("BTCUSDT", quantity="0.6", name="signal-btc"))
    eth = paper.place_order(order("ETHUSDT", quantity="30", name="signal-eth"))
    paper.place_order(order("SOLUSDT", quantity="1", name="signal-sol"))  # fills at once

    everywhere = paper.open_orders()
    on_eth = paper.open_orders("ETHUSDT")

    assert {o.client_order_id for o in everywhere} == {btc.client_order_id, eth.client_order_id}
    assert [(o.client_order_id, o.status) for o in on_eth] == [
        (eth.client_order_id, OrderStatus.PARTIALLY_FILLED)
    ]
    assert paper.open_orders("SOLUSDT") == []


def test_without_a_quote_an_order_is_refused_as_retryable_and_nothing_is_kept(paper):
    req = order(quantity="0.1")

    with pytest.raises(ExchangeError) as refused:
        paper.place_order(req)

    assert refused.value.retryable
    assert not refused.value.ambiguous
    with pytest.raises(ExchangeError) as missing:
        paper.query_order("BTCUSDT", req.client_order_id)
    assert missing.value.code == -2013
    # The retry, once the market data is there, is a first order and not a duplicate.
    record_bars([BTC[0]])
    assert paper.place_order(req).status is OrderStatus.FILLED


def test_an_unknown_symbol_is_refused_with_1121_and_nothing_is_kept(paper):
    record_bars([BTC[0]])
    req = order(symbol="NOSUCHUSDT", quantity="1")

    with pytest.raises(ExchangeError) as refused:
        paper.place_order(req)

    assert (refused.value.code, refused.value.retryable) == (-1121, False)
    assert paper.open_orders() == []
    with pytest.raises(ExchangeError) as missing:
        paper.query_order("NOSUCHUSDT", req.client_order_id)
    assert missing.value.code == -2013


def test_balances_move_by_the_fills(paper):
    record_bars([BTC[0]])
    assert paper.balances() == [Balance("USDT", CASH, Decimal(0))]
    buy = paper.place_order(order(quantity="0.6", name="signal-buy"))
    [more] = paper.on_bar(BTC[1])
    record_bars([BTC[2]])
    sell = paper.place_order(order(side="SELL", quantity="0.01", name="signal-sell"))

    fills = [*buy.fills, *more.fills]
    [sold] = sell.fills
    bought_quantity = sum(f.quantity for f in fills)
    spent = sum(f.quantity * f.price + f.commission for f in fills)
    received = sold.quantity * sold.price - sold.commission
    assert balances_of(paper) == {
        "BTC": bought_quantity - sold.quantity,
        "USDT": CASH + received - spent,
    }
    # The buy's rest is still open: it holds what it was placed with, less what its fills spent.
    assert more.status is OrderStatus.PARTIALLY_FILLED
    hold = Decimal("0.6") * taker_price(BTC[0]) * (1 + CONFIG.taker_fee_rate)
    locked = {b.asset: b.locked for b in paper.balances()}
    assert locked == {"BTC": 0, "USDT": hold - spent}


def test_everything_it_writes_is_under_the_platform_prefix(paper, prefix, redis_client):
    record_bars([BTC[0]])
    paper.place_order(order(quantity="0.6"))
    paper.on_bar(BTC[1])

    keys = set(redis_client.scan_iter(f"{prefix}:paper:*"))

    assert f"{prefix}:paper:orders" in keys
    assert f"{prefix}:paper:open" in keys
    assert f"{prefix}:paper:balances:default" in keys
    assert f"{prefix}:paper:locked:default" in keys


# --- balances, as Binance spot keeps them ---------------------------------------------------


def book(paper: PaperExchange, name: str, cash: str) -> PaperExchange:
    return paper.for_account(name, Decimal(cash))


def assert_insufficient_balance(refused: pytest.ExceptionInfo[ExchangeError]) -> None:
    payload = json.loads(ERROR_2010.read_text())
    assert refused.value.code == payload["body"]["code"] == -2010
    assert refused.value.message == payload["body"]["msg"]
    assert refused.value.http_status == payload["http_status"]
    assert not refused.value.retryable
    assert refused.value.insufficient_balance


def test_a_sell_of_what_the_book_does_not_hold_is_refused_with_2010(paper):
    record_bars([BTC[0], SOL[0]])
    alice = book(paper, "alice", "60618")

    with pytest.raises(ExchangeError) as refused:
        alice.place_order(order(side="SELL", quantity="0.03"))

    assert_insufficient_balance(refused)
    assert balances_of(alice) == {"USDT": Decimal("60618")}
    with pytest.raises(ExchangeError) as missing:
        alice.query_order("BTCUSDT", order(side="SELL", quantity="0.03").client_order_id)
    assert missing.value.code == -2013


def test_a_sell_of_more_than_is_held_is_refused_and_what_is_held_sells(paper):
    record_bars([ETH[0]])
    alice = book(paper, "alice", "60618")
    alice.place_order(order("ETHUSDT", quantity="2.9693", name="buy"))

    with pytest.raises(ExchangeError) as refused:
        alice.place_order(order("ETHUSDT", side="SELL", quantity="3.9693", name="too-much"))

    assert_insufficient_balance(refused)
    sold = alice.place_order(order("ETHUSDT", side="SELL", quantity="2.9693", name="all"))
    assert sold.status is OrderStatus.FILLED
    assert balances_of(alice)["ETH"] == 0


def test_a_buy_beyond_the_free_cash_with_its_fee_is_refused(paper):
    record_bars([BTC[0]])
    alice = book(paper, "alice", "60618")

    with pytest.raises(ExchangeError) as refused:
        alice.place_order(order(quantity="0.6"))  # about 68,600 USDT

    assert_insufficient_balance(refused)
    price = taker_price(BTC[0])
    # Exactly the cash at the taker price without the fee still does not pay with it.
    quantity = on_grid(Decimal("60618") / price, RULES["BTCUSDT"].step_size, ROUND_FLOOR)
    assert quantity * price <= Decimal("60618") < quantity * price * (1 + CONFIG.taker_fee_rate)
    with pytest.raises(ExchangeError):
        alice.place_order(order(quantity=str(quantity), name="edge"))
    assert balances_of(alice) == {"USDT": Decimal("60618")}


def test_an_open_order_holds_its_balance_until_it_fills(paper):
    record_bars([BTC[0]])
    alice = book(paper, "alice", "120000")
    first = alice.place_order(order(quantity="0.6", name="first"))  # part fills, rest held
    assert first.status is OrderStatus.PARTIALLY_FILLED
    [usdt] = [b for b in alice.balances() if b.asset == "USDT"]
    assert usdt.locked > 0

    with pytest.raises(ExchangeError) as refused:
        alice.place_order(order(quantity="0.5", name="second"))

    assert_insufficient_balance(refused)
    [done] = alice.on_bar(BTC[1])
    [rest] = alice.on_bar(BTC[2])
    assert rest.status is OrderStatus.FILLED
    assert all(b.locked == 0 for b in alice.balances())
    assert all(b.free >= 0 for b in alice.balances())
    assert done.fills


def test_each_account_has_its_own_book(paper):
    record_bars([SOL[0]])
    alice, bob = book(paper, "alice", "1000"), book(paper, "bob", "5000")

    alice.place_order(order("SOLUSDT", quantity="2", name="alice-buy"))

    assert balances_of(bob) == {"USDT": Decimal("5000")}
    assert balances_of(alice)["SOL"] == 2
    with pytest.raises(ExchangeError) as refused:
        bob.place_order(order("SOLUSDT", side="SELL", quantity="1", name="bob-sell"))
    assert_insufficient_balance(refused)


def test_a_rest_that_the_book_can_no_longer_pay_for_fills_what_it_can_then_expires(paper):
    record_bars([BTC[0]])
    price = taker_price(BTC[0])
    cash = Decimal("0.6") * price * (1 + CONFIG.taker_fee_rate)
    alice = book(paper, "alice", str(cash))
    alice.place_order(order(quantity="0.6"))
    dearer = dataclasses.replace(BTC[1], close=BTC[0].close * 2)

    [more] = alice.on_bar(dearer)
    later = alice.on_bar(dataclasses.replace(BTC[2], close=BTC[0].close * 2))

    assert more.fills and more.executed_quantity < Decimal("0.6")
    assert [o.status for o in later] == [OrderStatus.EXPIRED]
    assert all(b.free >= 0 and b.locked == 0 for b in alice.balances())
    assert alice.open_orders() == []
