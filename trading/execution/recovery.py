"""Recovery: signals whose task was lost, orders in doubt and balances checked against the
exchange (at start-up and on schedule), and the equity curve's snapshots."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from trading import bus
from trading.events import outbox
from trading.events.envelope import new_event
from trading.execution import metrics
from trading.execution.adapter import ExchangeError, FuturesExchange
from trading.execution.orders import reconcile_order
from trading.execution.recording import SERVICE
from trading.execution.venue import exchange
from trading.ledger import services as ledger
from trading.marketdata.prices import latest_prices
from trading.models import Account, Order, Signal
from trading.risk import services as risk
from trading.risk.reasons import AlertReason
from trading.store import redis_client, rkey

logger = logging.getLogger(__name__)


# A signal still pending after this long lost its task: a worker died holding it (the broker
# would give the message back only after its visibility timeout, an hour).
STALE_SIGNAL = timedelta(seconds=30)


def requeue_stale_signals(older_than: timedelta = STALE_SIGNAL) -> list[str]:
    """Sends every signal left pending too long to exec-risk again. Safe: processing a signal
    twice places at most one order."""
    cutoff = timezone.now() - older_than
    stale = [
        str(pk)
        for pk in Signal.objects.filter(
            status=Signal.Status.PENDING, created_at__lt=cutoff
        ).values_list("pk", flat=True)
    ]
    for signal_id in stale:
        bus.send(bus.PROCESS_SIGNAL, signal_id)
    if stale:
        logger.warning("re-sent %d signals left pending since before %s", len(stale), cutoff)
    return stale


# When a worker starts, whatever is pending may have been held by a worker that died: it is all
# sent again (a signal that was still queued is then processed twice, which is harmless).
STARTUP_STALE_SIGNAL = timedelta(0)


def reconcile_exchange(startup: bool = False) -> dict:
    """Refreshes symbol rules, records whether the exchange answers, settles every order in
    doubt (UNKNOWN, or open on our side) with the exchange's view, and re-sends signals whose
    task was lost. At start-up, first checks every account's cash against its fills."""
    from trading.execution.health import record_exchange_status
    from trading.marketdata.services import refresh_symbol_rules

    checked = {"cash_rebuilt": ledger.verify_balances()} if startup else {}
    venue = exchange()
    try:
        venue.ping()
    except ExchangeError as error:
        record_exchange_status(venue.name, False, str(error))
        return {"exchange": "unreachable", "error": str(error), **checked}
    record_exchange_status(venue.name, True)
    main = Account.objects.filter(name=risk.MAIN_ACCOUNT).first()
    # A futures account trades by the futures symbol rules (GET /fapi/v1/exchangeInfo).
    rules_venue = exchange(main) if main is not None and ledger.is_futures(main) else venue
    source = refresh_symbol_rules(rules_venue, list(settings.SYMBOLS))
    settled = []
    for order in Order.objects.filter(status__in=Order.OPEN_STATUSES):
        try:
            settled.append(reconcile_order(order.pk).status)
        except ExchangeError as error:
            logger.warning("could not reconcile %s: %s", order.client_order_id, error)
    strangers = []
    mismatched: dict = {}
    futures_checked: dict = {}
    try:
        known = set(Order.objects.values_list("client_order_id", flat=True))
        strangers = [o for o in venue.open_orders() if o.client_order_id not in known]
        account = Account.objects.filter(name=risk.MAIN_ACCOUNT).first()
        held = exchange(account).balances() if account is not None else venue.balances()
        record_exchange_balances(held)
        if startup and account is not None:
            mismatched = reconcile_balances(account, held)
            futures_checked = reconcile_futures(account)
    except ExchangeError as error:
        logger.warning("could not read open orders or balances: %s", error)
    for stranger in strangers:
        # An order the platform did not place: an operator must look at it.
        metrics.RISK_ALERTS.inc(reason=AlertReason.UNKNOWN_EXCHANGE_ORDER)
        outbox.record([new_event("risk.alert", {
            "reason": AlertReason.UNKNOWN_EXCHANGE_ORDER,
            "client_order_id": stranger.client_order_id,
            "symbol": stranger.symbol, "side": stranger.side,
            "quantity": str(stranger.orig_quantity)}, service=SERVICE)])  # fmt: skip
    return {
        "exchange": "ok",
        "symbol_rules": source,
        "orders_reconciled": len(settled),
        "unknown_exchange_orders": len(strangers),
        "balances_mismatched": sorted(mismatched),
        **futures_checked,
        "signals_requeued": len(
            requeue_stale_signals(STARTUP_STALE_SIGNAL if startup else STALE_SIGNAL)
        ),
        **checked,
    }


def reconcile_balances(account: Account, held: list) -> dict:
    """Compares the account's ledger with the balances its exchange ``held`` once every order in
    doubt is settled (``trading.ledger.services.reconcile_balances`` says which side wins: the
    exchange's cash on a live venue, the ledger on the paper exchange). An order still open may
    have filled unrecorded, which would read as a transfer: then nothing is compared."""
    if Order.objects.filter(account=account, status__in=Order.OPEN_STATUSES).exists():
        logger.warning("balances of %s not reconciled: orders are still open", account)
        return {}
    return ledger.reconcile_balances(account, held, follow=exchange(account).name != "paper")


def reconcile_futures(account: Account) -> dict:
    """On a futures venue: takes the notional brackets the exchange trades by (they replace the
    bundled ones), and compares its positions with the ledger's once no order is in doubt."""
    venue = exchange(account)
    if not ledger.is_futures(account) or not isinstance(venue, FuturesExchange):
        return {}
    brackets = ledger.store_brackets(venue.leverage_brackets())
    if Order.objects.filter(account=account, status__in=Order.OPEN_STATUSES).exists():
        logger.warning("positions of %s not reconciled: orders are still open", account)
        return {"leverage_brackets": brackets}
    wrong = ledger.reconcile_positions(account, venue.positions())
    return {"leverage_brackets": brackets, "positions_mismatched": sorted(wrong)}


def record_exchange_balances(balances) -> None:
    """The exchange's balances as last read, for the portfolio page and the health check."""
    import json

    redis_client().set(
        rkey("exchange", "balances"),
        json.dumps({b.asset: {"free": str(b.free), "locked": str(b.locked)} for b in balances}),
    )


def snapshot_equity(account: Account) -> None:
    """Records the account's equity, cash, exposure and PnL now (the equity curve)."""
    ledger.snapshot_equity(account, latest_prices())
