"""Backtest parity with the operator's paper book: the last hours of the book's bars, replayed
through the backtest with the book's strategies and settings, make the orders and fills the
book made (``trading.backtest.parity``). Read-only: it trades nothing."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from trading.backtest.parity import NotComparable, check_parity
from trading.events import outbox
from trading.events.envelope import new_event
from trading.events.types import EventType
from trading.risk.services import get_account
from trading.selftest.base import Context, Outcome, scenario
from trading.selftest.metrics import PARITY
from trading.selftest.scenarios.common import INTEGRATION

WINDOW = timedelta(hours=3)


@scenario(INTEGRATION, PARITY, "Backtest parity with the paper book")
def backtest_parity(ctx: Context) -> Outcome:
    """The operator's paper book over the last ``WINDOW``: every order and fill (symbol, side,
    quantity, price, fee) the same in its backtest. A difference fails the check, is exported
    as ``quantum_trader_backtest_parity_mismatches`` and sent as ``backtest.parity_mismatch``."""
    account = get_account()
    if settings.EXCHANGE != "paper":
        return Outcome.skipped(f"the book trades on {settings.EXCHANGE}, not the paper exchange")
    end = timezone.now()
    try:
        parity = check_parity(account, end - WINDOW, end)
    except NotComparable as why:
        return Outcome.skipped(str(why))
    summary = parity.summary()
    if not parity.mismatches:
        return Outcome.passed(
            f"{summary['orders']} orders and {summary['fills']} fills over {parity.bars} bars "
            f"agree with the backtest of {parity.strategy}",
            **summary,
        )
    first = parity.mismatches[0]
    reason = f"{len(parity.mismatches)} differences; first: {first}"
    outbox.record([
        new_event(EventType.BACKTEST_PARITY_MISMATCH, {**summary, "reason": reason},
                  service="analytics"),
    ])  # fmt: skip
    return Outcome.failed(reason, **summary)
