"""Risk at the edges: limits and trading state from the database, the book from the ledger.

The decisions themselves are pure (``trading.risk.checks``, ``trading.risk.state``); these
functions load their inputs, persist the outcome with an audit record and publish the event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from trading.events import outbox
from trading.events.envelope import new_event
from trading.execution import metrics
from trading.models import (
    Account,
    CashBalance,
    Fill,
    Order,
    Position,
    RiskLimits,
    TradingStateChange,
    TradingStateRecord,
)
from trading.portfolio.pnl import total_cash_flow
from trading.risk.checks import BookState, Limits
from trading.risk.reasons import AlertReason, Reason
from trading.risk.state import InvalidTransition, TradingState, automatic_state, transition

logger = logging.getLogger(__name__)
ZERO = Decimal("0")


def get_account(name: str = "main") -> Account:
    """The account by name, created (with its trading state) on first use."""
    account, _ = Account.objects.get_or_create(
        name=name,
        defaults={
            "venue": settings.EXCHANGE,
            "starting_cash": settings.STARTING_CASH,
            "peak_equity": settings.STARTING_CASH,
        },
    )
    TradingStateRecord.objects.get_or_create(account=account)
    return account


def global_limits() -> RiskLimits:
    limits, _ = RiskLimits.objects.get_or_create(symbol="")
    return limits


def limits_for(symbol: str) -> Limits:
    """The limits that apply to ``symbol``: the per-symbol row where there is one, else global.

    ``allowed_symbols`` always comes from the global row.
    """
    rows = {row.symbol: row for row in RiskLimits.objects.filter(symbol__in=("", symbol))}
    base = rows.get("") or global_limits()
    row = rows.get(symbol, base)
    return Limits(
        min_confidence=row.min_confidence,
        max_position_notional=row.max_position_notional,
        max_total_exposure=base.max_total_exposure,
        max_leverage=row.max_leverage,
        max_open_positions=base.max_open_positions,
        daily_loss_limit=base.daily_loss_limit,
        max_drawdown=base.max_drawdown,
        max_orders_per_minute=base.max_orders_per_minute,
        allowed_symbols=base.allowed_symbol_set,
    )


def current_state(account: Account) -> TradingState:
    record = TradingStateRecord.objects.get(account=account)
    return TradingState(record.state)


def utc_day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def daily_realized_pnl(account: Account, now: datetime | None = None) -> Decimal:
    """Realized PnL net of fees of fills since 00:00 UTC today."""
    start = utc_day_start(now or timezone.now())
    totals = Fill.objects.filter(order__account=account, ts__gte=start).aggregate(
        realized=Sum("realized_pnl"), fees=Sum("fee")
    )
    return (totals["realized"] or ZERO) - (totals["fees"] or ZERO)


def daily_trades(account: Account, now: datetime | None = None) -> int:
    start = utc_day_start(now or timezone.now())
    return Fill.objects.filter(order__account=account, ts__gte=start).count()


def open_positions(account: Account, *, ordered: bool = True) -> list[Position]:
    """The account's open positions, newest first; in no set order with ``ordered=False``,
    for the checks on every order's way, where the sort costs a tenth of a millisecond."""
    positions = Position.objects.filter(account=account, status=Position.Status.OPEN)
    return list(positions if ordered else positions.order_by())


def book_state(account: Account, marks: dict[str, Decimal], now: datetime | None = None):
    """What the pre-trade checks need: state, open positions, marks, today's PnL, order rate."""
    now = now or timezone.now()
    held = [p for p in open_positions(account, ordered=False) if p.quantity]
    # Without a quote, a position is valued at its entry price rather than not at all.
    unpriced = {p.symbol: p.average_entry_price for p in held if p.symbol not in marks}
    recent = Order.objects.filter(account=account, created_at__gte=now - timedelta(minutes=1))
    return BookState(
        trading_state=current_state(account),
        positions={p.symbol: p.quantity for p in held},
        marks={**unpriced, **marks},
        daily_pnl=daily_realized_pnl(account, now) + _unrealized(held, marks),
        orders_last_minute=recent.count(),
    )


def _unrealized(positions: list[Position], marks: dict[str, Decimal]) -> Decimal:
    return sum((p.unrealized_pnl(marks.get(p.symbol)) for p in positions), ZERO)


def unrealized_pnl(account: Account, marks: dict[str, Decimal]) -> Decimal:
    return _unrealized(open_positions(account), marks)


@dataclass(frozen=True)
class StateChange:
    from_state: TradingState
    to_state: TradingState
    changed: bool


def change_trading_state(
    account: Account,
    target: TradingState,
    *,
    actor: str,
    reason: str,
    resume: bool = False,
    flatten: bool = False,
) -> StateChange:
    """Moves the account to ``target`` with an audit record and a ``risk.state_changed`` event.

    Idempotent: asking for the state the account is already in changes nothing and records
    nothing. Raises ``InvalidTransition`` for a change the state machine refuses.
    """
    with transaction.atomic():
        record = TradingStateRecord.objects.select_for_update().get(account=account)
        current = TradingState(record.state)
        if current == target:
            return StateChange(current, target, changed=False)
        transition(current, target, resume=resume)
        updated = TradingStateRecord.objects.filter(pk=record.pk, state=current).update(
            state=target, reason=reason[:200], changed_at=timezone.now()
        )
        if updated != 1:
            raise InvalidTransition(current, target, "another process changed the state first")
        TradingStateChange.objects.create(
            account=account,
            from_state=current,
            to_state=target,
            actor=actor[:150],
            reason=reason[:200],
            flatten=flatten,
        )
        event = new_event(
            "risk.state_changed",
            {
                "account": account.name,
                "from": str(current),
                "to": str(target),
                "actor": actor,
                "reason": reason,
                "flatten": flatten,
            },
            service="exec-risk",
        )
        outbox.record([event])
    if target is TradingState.HALTED:
        metrics.EMERGENCY_STOPS.inc()
    logger.warning("trading state %s -> %s by %s: %s", current, target, actor, reason)
    return StateChange(current, TradingState(target), changed=True)


def halt_trading(account: Account, *, actor: str, reason: str, flatten: bool = False):
    """The emergency stop: no new orders; with ``flatten``, every open position is closed."""
    change = change_trading_state(
        account, TradingState.HALTED, actor=actor, reason=reason or "emergency stop",
        flatten=flatten,
    )  # fmt: skip
    if flatten:
        from trading.execution.tasks import flatten_positions

        transaction.on_commit(lambda: flatten_positions.delay(account.pk, actor))
    return change


def resume_trading(account: Account, *, actor: str, reason: str) -> StateChange:
    return change_trading_state(
        account, TradingState.ACTIVE, actor=actor, reason=reason or "resumed", resume=True
    )


def apply_automatic_state(account: Account, marks: dict[str, Decimal]) -> StateChange | None:
    """After the book changes: the daily loss limit halts, the drawdown limit reduces."""
    base = global_limits()
    positions = open_positions(account, ordered=False)
    equity = account_cash(account) + market_value(positions, marks)
    if equity > account.peak_equity:
        Account.objects.filter(pk=account.pk, peak_equity__lt=equity).update(peak_equity=equity)
        account.peak_equity = equity
    current = current_state(account)
    target, why = automatic_state(
        current,
        daily_pnl=daily_realized_pnl(account) + _unrealized(positions, marks),
        daily_loss_limit=base.daily_loss_limit,
        equity=equity,
        peak_equity=account.peak_equity,
        max_drawdown=base.max_drawdown,
    )
    if target == current or why is None:
        return None
    metrics.RISK_ALERTS.inc(reason=str(why))
    outbox.record(
        [
            new_event(
                "risk.alert",
                {"account": account.name, "reason": str(why), "equity": str(equity)},
                service="exec-risk",
            )
        ]
    )
    return change_trading_state(
        account, target, actor=f"system:{why}", reason=Reason(why).description
    )


def account_cash(account: Account) -> Decimal:
    """Starting cash plus every fill's cash flow (sells bring in, buys spend, fees always cost),
    read from the running total that ``record_cash_flows`` keeps: one row, however many fills."""
    flows = CashBalance.objects.filter(account=account).values_list("fill_flows", flat=True).first()
    # No row yet: no fill has been recorded for the account (its first one creates the row).
    return account.starting_cash + (ZERO if flows is None else flows)


def ledger_cash(account: Account) -> Decimal:
    """The cash worked out again from every fill of the account, one by one: what
    ``account_cash`` must always equal. Costs a pass over the fills; for checks, not for the
    hot path."""
    return account.starting_cash + _ledger_flows(account.pk)


def _ledger_flows(account_id: int) -> Decimal:
    fills = Fill.objects.filter(order__account_id=account_id)
    return total_cash_flow(fills.values_list("side", "quantity", "price", "fee"))


def record_cash_flows(account_id: int, fills: list[Fill]) -> Decimal:
    """Adds the cash flow of newly stored ``fills`` to the account's running total and returns
    the total (without the starting cash).

    Must run inside the transaction that stores the fills, so that the fills and their cash
    commit together or not at all, and with the rows as the database returns them: a value it
    rounded on the way in (SQLite keeps 15 significant digits) counts as stored, as
    ``ledger_cash`` will read it. The total's row is locked until the commit (SQLite's IMMEDIATE
    transactions hold the whole database from their start), so two processes recording fills at
    once cannot both start from the same old total. Raises ``RuntimeError`` outside a
    transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_cash_flows must run in the transaction that stores the fills")
    balance, created = CashBalance.objects.select_for_update().get_or_create(
        account_id=account_id,
        # The account's first recorded fill: start the total from the ledger, this fill in it.
        defaults={"fill_flows": lambda: _ledger_flows(account_id)},
    )
    if created:
        return balance.fill_flows
    rows = ((f.side, f.quantity, f.price, f.fee) for f in fills)
    balance.fill_flows = total_cash_flow(rows, start=balance.fill_flows)
    balance.save(update_fields=["fill_flows", "updated_at"])
    return balance.fill_flows


def rebuild_cash_balance(account: Account) -> Decimal:
    """Sets the running total to what the account's fills add up to and returns the cash: after
    fills were removed (a sandbox reset), or to repair a total found wrong."""
    with transaction.atomic():
        # The row is locked before the fills are read, so no fill recorded meanwhile is missed.
        balance, _ = CashBalance.objects.update_or_create(
            account_id=account.pk, defaults={"fill_flows": lambda: _ledger_flows(account.pk)}
        )
    return account.starting_cash + balance.fill_flows


def verify_cash_balances() -> list[str]:
    """Checks every account's running cash against its fills; a total found wrong raises a
    ``risk.alert`` (CASH_MISMATCH) and is rebuilt from the fills, which are the record. Returns
    the names of the accounts that were wrong. A pass over every fill: for start-up, not for
    every minute."""
    wrong = []
    for account in Account.objects.all():
        if account_cash(account) == ledger_cash(account):
            continue
        with transaction.atomic():
            # Read apart, the two may straddle a fill being recorded: look again, locked.
            CashBalance.objects.select_for_update().filter(account=account).first()
            stored, computed = account_cash(account), ledger_cash(account)
            if stored == computed:
                continue
            rebuild_cash_balance(account)
        wrong.append(account.name)
        logger.error("cash of %s was %s, its fills say %s: rebuilt", account, stored, computed)
        metrics.RISK_ALERTS.inc(reason=AlertReason.CASH_MISMATCH)
        outbox.record(
            [
                new_event(
                    "risk.alert",
                    {
                        "account": account.name,
                        "reason": AlertReason.CASH_MISMATCH,
                        "stored": str(stored),
                        "fills": str(computed),
                    },
                    service="exec-risk",
                )
            ]
        )
    return wrong


def account_equity(account: Account, marks: dict[str, Decimal]) -> Decimal:
    """Cash plus the market value of open positions (at entry price when unpriced)."""
    return account_cash(account) + market_value(open_positions(account), marks)


def market_value(positions: list[Position], marks: dict[str, Decimal]) -> Decimal:
    """The positions' signed value at their marks (at entry price when unpriced)."""
    return sum((p.quantity * marks.get(p.symbol, p.average_entry_price) for p in positions), ZERO)


def limits_json(row: RiskLimits) -> dict:
    return {
        "symbol": row.symbol or None,
        "min_confidence": str(row.min_confidence),
        "max_position_notional": str(row.max_position_notional),
        "max_total_exposure": str(row.max_total_exposure),
        "max_leverage": row.max_leverage,
        "max_open_positions": row.max_open_positions,
        "daily_loss_limit": str(row.daily_loss_limit),
        "max_drawdown": str(row.max_drawdown),
        "max_orders_per_minute": row.max_orders_per_minute,
        "allowed_symbols": sorted(row.allowed_symbol_set),
    }


def risk_summary(account: Account) -> dict:
    """What ``GET /api/v1/risk`` and ``manage.py show_risk`` answer."""
    record = TradingStateRecord.objects.get(account=account)
    base = global_limits()
    changes = TradingStateChange.objects.filter(account=account)[:20]
    return {
        "account": account.name,
        "state": record.state,
        "reason": record.reason,
        "changed_at": record.changed_at.isoformat(),
        "limits": limits_json(base),
        "symbol_limits": [limits_json(r) for r in RiskLimits.objects.exclude(symbol="")],
        "daily_pnl": str(daily_realized_pnl(account)),
        "history": [
            {
                "from": c.from_state,
                "to": c.to_state,
                "actor": c.actor,
                "reason": c.reason,
                "flatten": c.flatten,
                "at": c.at.isoformat(),
            }
            for c in changes
        ],
    }
