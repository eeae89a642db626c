"""Risk at the edges: limits and trading state from the database, the book from the ledger
(``trading.ledger.services``).

The decisions themselves are pure (``trading.risk.checks``, ``trading.risk.state``); these
functions load their inputs, persist the outcome with an audit record and publish the event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from trading import bus
from trading.events import outbox
from trading.events.envelope import new_event
from trading.execution import metrics
from trading.ledger import services as ledger
from trading.ledger.book import AccountKind
from trading.ledger.futures import bundled_brackets
from trading.models import (
    Account,
    Order,
    RiskLimits,
    TradingStateChange,
    TradingStateRecord,
)
from trading.prepared import Param, Prepared
from trading.risk.checks import BookState, Limits
from trading.risk.reasons import Reason
from trading.risk.state import InvalidTransition, TradingState, automatic_state, transition

logger = logging.getLogger(__name__)
ZERO = Decimal("0")


MAIN_ACCOUNT = "main"


def get_account(name: str = MAIN_ACCOUNT) -> Account:
    """The account by name, created (with its trading state) on first use."""
    account, _ = Account.objects.get_or_create(
        name=name,
        defaults={
            "venue": settings.EXCHANGE,
            "kind": settings.ACCOUNT_KIND if name == MAIN_ACCOUNT else AccountKind.SPOT,
            "starting_cash": settings.STARTING_CASH,
            "peak_equity": settings.STARTING_CASH,
        },
    )
    TradingStateRecord.objects.get_or_create(account=account)
    return account


def global_limits() -> RiskLimits:
    found = _GLOBAL_LIMITS.objects()
    if found:
        return found[0]
    limits, _ = RiskLimits.objects.get_or_create(symbol="")
    return limits


_GLOBAL_LIMITS = Prepared(lambda: RiskLimits.objects.filter(symbol=""))
# The global row and the symbol's, when it has one.
_LIMITS_FOR = Prepared(
    lambda: RiskLimits.objects.filter(
        Q(symbol="") | Q(symbol=Param("symbol", RiskLimits._meta.get_field("symbol")))
    ).order_by()
)


def limits_for(symbol: str) -> Limits:
    """The limits that apply to ``symbol``: the per-symbol row where there is one, else global.

    ``allowed_symbols`` always comes from the global row.
    """
    rows = {row.symbol: row for row in _LIMITS_FOR.objects(symbol=symbol)}
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
    """The account's trading state; read with the account when it came with
    ``select_related("trading_state")``."""
    if Account.trading_state.is_cached(account):
        return TradingState(account.trading_state.state)
    found = _TRADING_STATE.rows(account=account.pk)
    if not found:
        raise TradingStateRecord.DoesNotExist(f"no trading state for account {account.pk}")
    return TradingState(found[0][0])


_TRADING_STATE = Prepared(
    lambda: TradingStateRecord.objects.filter(
        account_id=Param("account", TradingStateRecord._meta.get_field("account"))
    ).values_list("state")
)
# The account's orders since a time, counted (no row without any).
_ORDERS_SINCE = Prepared(
    lambda: (
        Order.objects.filter(
            account_id=Param("account", Order._meta.get_field("account")),
            created_at__gte=Param("since", Order._meta.get_field("created_at")),
        )
        .order_by()
        .values("account_id")
        .annotate(orders=Count("pk"))
        .values_list("orders")
    )
)


def book_state(
    account: Account,
    marks: dict[str, Decimal],
    now: datetime | None = None,
    *,
    fee_rate: Decimal = ZERO,
) -> BookState:
    """What the pre-trade checks need, from the ledger: state, account kind, open positions,
    free balances, marks, today's PnL, order rate."""
    now = now or timezone.now()
    book = ledger.snapshot(account, marks)
    held = [p for p in book.positions if p.quantity]
    # Without a quote, a position is valued at its entry price rather than not at all.
    unpriced = {p.symbol: p.average_entry_price for p in held if p.symbol not in marks}
    recent = _ORDERS_SINCE.rows(account=account.pk, since=now - timedelta(minutes=1))
    futures = {}
    if ledger.is_futures(account):
        futures = {
            "available_balance": ledger.margin(account, marks).available_balance,
            "brackets": bundled_brackets(),
        }
    return BookState(
        trading_state=current_state(account),
        kind=AccountKind(account.kind),
        positions={p.symbol: p.quantity for p in held},
        balances={asset: balance.free for asset, balance in book.balances.items()},
        fee_rate=fee_rate,
        marks={**unpriced, **marks},
        daily_pnl=ledger.daily_pnl(account, marks, now, current=book.valuation),
        orders_last_minute=recent[0][0] if recent else 0,
        **futures,
    )


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
        transaction.on_commit(lambda: bus.send(bus.FLATTEN_POSITIONS, account.pk, actor))
    return change


def resume_trading(account: Account, *, actor: str, reason: str) -> StateChange:
    return change_trading_state(
        account, TradingState.ACTIVE, actor=actor, reason=reason or "resumed", resume=True
    )


def apply_automatic_state(account: Account, marks: dict[str, Decimal]) -> StateChange | None:
    """After the book changes: the daily loss limit halts, the drawdown limit reduces."""
    base = global_limits()
    valued = ledger.valuation(account, marks)
    equity = valued.equity
    if equity > account.peak_equity:
        Account.objects.filter(pk=account.pk, peak_equity__lt=equity).update(peak_equity=equity)
        account.peak_equity = equity
    current = current_state(account)
    target, why = automatic_state(
        current,
        daily_pnl=ledger.daily_pnl(account, marks, current=valued),
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


def risk_summary(account: Account, marks: dict[str, Decimal] | None = None) -> dict:
    """What ``GET /api/v1/risk`` and ``manage.py show_risk`` answer; the daily PnL at ``marks``
    (the latest quotes when not given), the same figure as the portfolio's."""
    from trading.marketdata.prices import latest_prices

    marks = latest_prices() if marks is None else marks
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
        "daily_pnl": str(ledger.daily_pnl(account, marks)),
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
