"""The cash kept as a running total: always what the fills add up to, fill by fill, under
concurrent workers, after a sandbox reset and from the migration that starts it.

Exchange answers are built by hand and recorded with ``apply_order_result``, the one way fills
enter the book, so that every price, quantity and commission is chosen here; the expected cash is
worked out by hand as well as recomputed from the stored fills (``ledger_cash``).
"""

from __future__ import annotations

import threading
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from tests.support.exchange_answers import new_order, report, trade
from trading.events.replay import read_window
from trading.execution.adapter import OrderStatus
from trading.ledger import services as ledger
from trading.models import Account, AssetBalance, Fill
from trading.risk import services as risk
from trading.selftest.runner import reset_sandbox, sandbox_account

pytestmark = pytest.mark.django_db(transaction=True)


def cash(account: Account) -> D:
    """The cash as the platform reads it, checked against the fills it must add up to."""
    stored = ledger.account_cash(account)
    assert stored == ledger.ledger_cash(account), "the running total left its fills"
    return stored


def test_buys_sells_partial_fills_and_commissions_move_the_cash_by_hand(market):
    account = risk.get_account()
    start = account.starting_cash
    assert cash(account) == start

    buy = new_order(account, "BTCUSDT", "BUY", "0.3")
    report(buy, trade("0.1", "60000", "6"), status=OrderStatus.PARTIALLY_FILLED)
    assert cash(account) == start - D("6000") - D("6")
    report(buy, trade("0.2", "60010", "12.002"))
    report(new_order(account, "BTCUSDT", "SELL", "0.3"), trade("0.3", "61000", "18.3"))
    # A commission in the base asset is paid in the base asset, not in USDT: Binance takes a
    # buy's out of the BTC it bought and pays a sale's proceeds in full.
    report(
        new_order(account, "BTCUSDT", "BUY", "0.001"), trade("0.001", "60000", "0.000001", "BTC")
    )
    report(new_order(account, "ETHUSDT", "SELL", "2"), trade("2", "3000", "0.006", "ETH"))
    # One in a third asset (BNB) is not paid in the quote asset: no cash moves for it.
    report(new_order(account, "SOLUSDT", "BUY", "10"), trade("10", "150", "0.01", "BNB"))

    moves = [
        D("-6000") - D("6"),  # buy 0.1 BTC
        D("-12002") - D("12.002"),  # buy 0.2 BTC
        D("18300") - D("18.3"),  # sell 0.3 BTC
        D("-60"),  # buy 0.001 BTC, fee in BTC
        D("6000"),  # sell 2 ETH short, fee in ETH
        D("-1500"),  # buy 10 SOL, fee in BNB
    ]
    assert cash(account) == start + sum(moves)
    # The fills say so as the book counts them: the base they moved, the fee valued in USDT.
    paid_in_eth = Fill.objects.get(symbol="ETHUSDT")
    assert (paid_in_eth.quantity, paid_in_eth.fee, paid_in_eth.fee_asset) == (
        D("2.006"),
        D("18"),
        "ETH",
    )


def test_the_running_total_counts_each_fill_as_the_database_stored_it(market):
    account = risk.get_account()
    report(new_order(account, quantity="0.1"), trade("0.1", "60000", "6"))  # the total exists
    # More digits than the database keeps (SQLite: 15 significant, any: 10 decimal places),
    # and a commission in BTC whose value in USDT has more still.
    reported = trade("0.1234567891", "123456.12345678912", "0.0000123456789", "BTC")
    report(new_order(account, quantity="0.1234567891"), reported)

    stored = Fill.objects.get(trade_id=reported.trade_id)
    assert (stored.price, stored.fee) != (reported.price, reported.commission * reported.price)
    as_stored = -(stored.quantity * stored.price) - stored.fee
    assert cash(account) == account.starting_cash - D("6006") + as_stored


def test_a_fill_reported_twice_moves_the_cash_once(market):
    account = risk.get_account()
    order = new_order(account, quantity="0.5")
    fill = trade("0.5", "60000", "30")
    report(order, fill)
    report(order, fill)
    assert cash(account) == account.starting_cash - D("30030")


def test_two_workers_recording_fills_at_once_lose_no_cash(market):
    account = risk.get_account()
    rounds = 25
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(side: str) -> None:
        try:
            orders = [new_order(account, "ETHUSDT", side, "0.01") for _ in range(rounds)]
            start.wait(timeout=10)
            for order in orders:
                report(order, trade("0.01", "3000.01", "0.03"))
        except BaseException as error:  # handed to the test's thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(side,)) for side in ("BUY", "SELL")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert Fill.objects.filter(order__account=account).count() == 2 * rounds
    # Buys and sells of the same size and price cancel out; only the fees remain.
    assert cash(account) == account.starting_cash - 2 * rounds * D("0.03")


def test_the_first_fill_of_an_account_without_a_total_starts_it_from_its_fills(market):
    account = risk.get_account()
    report(new_order(account, quantity="0.1"), trade("0.1", "60000", "6"))
    AssetBalance.objects.filter(account=account).delete()  # as if it had never been kept
    assert ledger.account_cash(account) != ledger.ledger_cash(account)

    report(new_order(account, quantity="0.1"), trade("0.1", "61000", "6.1"))

    assert cash(account) == account.starting_cash - D("6006") - D("6106.1")


def test_the_total_is_only_kept_inside_the_transaction_that_stores_the_fills(market):
    order = new_order(risk.get_account(), quantity="0.1")
    with pytest.raises(RuntimeError, match="transaction"):
        ledger.record_fills(order, [], D(0))
    with transaction.atomic():
        ledger.record_fills(order, [], D(0))
    assert cash(order.account) == order.account.starting_cash


def test_the_total_keeps_digits_a_decimal_column_would_round():
    account = risk.get_account()
    digits = D("-123456789.123456789012345678901234")
    AssetBalance.objects.create(account=account, asset="USDT", net=digits)
    assert AssetBalance.objects.get(account=account, asset="USDT").net == digits
    assert ledger.account_cash(account) == account.starting_cash + digits


def test_a_sandbox_reset_gives_the_sandbox_its_starting_cash_back_and_leaves_main_alone(market):
    main, sandbox = risk.get_account(), sandbox_account()
    report(new_order(main, quantity="0.1"), trade("0.1", "60000", "6"))
    report(new_order(sandbox, quantity="0.2"), trade("0.2", "60000", "12"))
    report(new_order(sandbox, "ETHUSDT", "SELL", "1"), trade("1", "3000", "3"))
    assert cash(sandbox) == sandbox.starting_cash - D("12012") + D("2997")

    reset_sandbox(sandbox, settle_seconds=5)

    assert not Fill.objects.filter(order__account=sandbox).exists()
    assert cash(sandbox) == sandbox.starting_cash
    assert cash(main) == main.starting_cash - D("6006")


def test_verifying_finds_a_wrong_total_raises_an_alert_and_rebuilds_it_from_the_fills(market):
    account = risk.get_account()
    report(new_order(account, quantity="0.1"), trade("0.1", "60000", "6"))
    assert ledger.verify_balances() == []

    AssetBalance.objects.filter(account=account, asset="USDT").update(net=D("1"))
    assert ledger.verify_balances() == [account.name]

    right = account.starting_cash - D("6006")
    assert cash(account) == right
    alerts = [
        event.payload
        for _, event in read_window(types=["risk.alert"], limit=1000)
        # Other tests' alerts share the log: only this kind, with its fields, is this test's.
        if event.payload.get("reason") == "CASH_MISMATCH" and event.payload["account"] == "main"
    ]
    stored, fills = alerts[-1]["stored"], alerts[-1]["fills"]
    assert (D(stored["USDT"]), D(fills["USDT"])) == (D(1), right - account.starting_cash)
    assert D(stored["BTC"]) == D(fills["BTC"]) == D("0.1")


def test_the_migration_starts_each_total_from_the_fills_already_stored(market):
    main, other, empty = (risk.get_account(name) for name in ("main", "desk-b", "desk-c"))
    report(new_order(main, quantity="0.3"), trade("0.3", "60000.5", "18.00015"))
    report(new_order(main, "ETHUSDT", "SELL", "2"), trade("2", "3000.25", "0.002", "ETH"))
    report(new_order(other, "SOLUSDT", "BUY", "7"), trade("7", "151.37", "0.01", "BNB"))
    before = {account.name: ledger.account_cash(account) for account in (main, other)}

    call_command("migrate", "trading", "0014_bar_store_and_signal_scores", verbosity=0)
    call_command("migrate", "trading", "0015_spot_balances", verbosity=0)
    call_command("migrate", "trading", verbosity=0)  # and on, to the models as they are

    assert {account.name: cash(account) for account in (main, other)} == before
    # The ETH sale's commission was paid in ETH: its 6 000.5 USDT all came in.
    bought, sold = D("18000.15") + D("18.00015"), D("6000.5")
    assert before["main"] == main.starting_cash - bought + sold
    assert not AssetBalance.objects.filter(account=empty).exists()
    # Every asset the fills moved has its balance: 0.3 BTC in, 2 ETH and its commission out.
    balances = ledger.balances(main)
    assert (balances["BTC"].free, balances["ETH"].free) == (D("0.3"), D("-2.002"))
