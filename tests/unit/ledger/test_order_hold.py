from decimal import Decimal

from trading.ledger.book import AccountKind, order_hold


def hold(kind, side, remaining, *, reduce_only=False, leverage=1):
    return order_hold(
        kind, side, Decimal(remaining), Decimal("20000"), Decimal("0.001"),
        base="BTC", quote="USDT", leverage=leverage, reduce_only=reduce_only,
    )  # fmt: skip


def test_a_spot_buy_holds_its_cost_with_the_fee_in_the_quote_asset():
    assert hold(AccountKind.SPOT, "BUY", "0.5") == ("USDT", Decimal("10010"))


def test_a_spot_sell_holds_its_quantity_of_the_base_asset():
    assert hold(AccountKind.SPOT, "SELL", "0.5") == ("BTC", Decimal("0.5"))


def test_a_futures_order_holds_its_initial_margin_and_fee_in_the_quote_asset():
    assert hold(AccountKind.FUTURES, "SELL", "0.5", leverage=10) == ("USDT", Decimal("1010"))


def test_a_reduce_only_futures_order_holds_its_fee_alone():
    assert hold(AccountKind.FUTURES, "BUY", "0.5", leverage=10, reduce_only=True) == (
        "USDT",
        Decimal("10"),
    )


def test_a_filled_order_holds_nothing():
    assert hold(AccountKind.SPOT, "BUY", "0") == ("USDT", Decimal(0))
