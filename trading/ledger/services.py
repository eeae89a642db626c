"""The ledger at the edges: an account's balances, positions, valuation and daily PnL, read from
the database and the latest quotes, and the fills' moves recorded in the transaction that
stores them. The arithmetic is ``trading.ledger.book``'s; risk, the API, the dashboard, the
metrics, health and analytics all read the account here.

Daily PnL is the PnL since 00:00 UTC: today's realized PnL net of fees plus the change of the
unrealized PnL since the day's open. The open is recorded once per account and UTC day, at the
first read of the day (``day_open``): the positions held at 00:00, worked out from the fills
before it, valued at the latest quotes of that read. The bar store's replayed bars carry the
times of their recording, not the wall clock, so the price "at 00:00" is the quote of the first
read after it, seconds later on a running platform where every bar and every scrape reads the
book.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet, Sum
from django.utils import timezone

from trading.events import outbox
from trading.events.envelope import new_event
from trading.ledger import book, futures
from trading.ledger.book import AccountKind, AssetBalance, PositionState, Valuation
from trading.marketdata.services import symbol_rules
from trading.models import (
    Account,
    DayOpen,
    Fill,
    Order,
    Position,
    SymbolLeverage,
    TradingStateRecord,
)
from trading.models import AssetBalance as BalanceRow
from trading.prepared import Param, Prepared, save_fields
from trading.risk.reasons import AlertReason

logger = logging.getLogger(__name__)
ZERO = Decimal("0")
# Every traded symbol is quoted in it; the account's cash is its balance.
QUOTE_ASSET = "USDT"


class ExchangeBalance(Protocol):
    """A balance as an exchange adapter reports it."""

    asset: str
    free: Decimal
    locked: Decimal


class InsufficientBalance(Exception):
    """The account's free balance cannot pay for an order; the message says what is missing."""


class InsufficientMargin(InsufficientBalance):
    """A futures account's available balance cannot pay an order's margin."""


def is_futures(account: Account) -> bool:
    return account.kind == AccountKind.FUTURES


# --- futures: leverage and margin ----------------------------------------------------------


def leverages(account: Account) -> dict[str, int]:
    """The account's leverage per symbol that has a setting (1 for any other)."""
    return dict(SymbolLeverage.objects.filter(account=account).values_list("symbol", "leverage"))


def leverage_for(account: Account, symbol: str) -> int:
    return leverages(account).get(symbol, 1)


def set_leverage(account: Account, symbol: str, leverage: int) -> None:
    """Records the account's leverage in ``symbol`` (checked against the brackets and the
    limits by the caller, as Binance checks POST /fapi/v1/leverage)."""
    SymbolLeverage.objects.update_or_create(
        account=account, symbol=symbol, defaults={"leverage": leverage}
    )


BRACKETS_CACHE_SECONDS = 60.0
_brackets_cache: dict[str, object] = {"at": float("-inf"), "brackets": {}}


def store_brackets(brackets: dict[str, futures.Brackets]) -> int:
    """Keeps the brackets the exchange reported (GET /fapi/v1/leverageBracket) for every
    process: they replace the bundled ones symbol by symbol. Returns how many were stored."""
    import json

    from trading.store import redis_client, rkey

    if brackets:
        redis_client().hset(
            rkey("futures", "brackets"),
            mapping={s: json.dumps(futures.brackets_payload(b)) for s, b in brackets.items()},
        )
    _brackets_cache["at"] = float("-inf")
    return len(brackets)


def _exchange_brackets() -> dict[str, futures.Brackets]:
    import json
    import time

    from trading.store import redis_client, rkey

    if time.monotonic() - float(_brackets_cache["at"]) < BRACKETS_CACHE_SECONDS:  # type: ignore[arg-type]
        return _brackets_cache["brackets"]  # type: ignore[return-value]
    stored = redis_client().hgetall(rkey("futures", "brackets"))
    parsed: dict[str, futures.Brackets] = {}
    for raw in stored.values():
        parsed.update(futures.parse_brackets(json.loads(raw)))
    _brackets_cache.update(at=time.monotonic(), brackets=parsed)
    return parsed


def brackets_for(symbol: str) -> futures.Brackets:
    """The symbol's leverage brackets: the exchange's when they were read from it (live), else
    the bundled ones; a symbol without any is refused as one the futures account cannot
    trade."""
    found = _exchange_brackets().get(symbol) or futures.bundled_brackets().get(symbol)
    if found is None:
        raise ValueError(f"no leverage brackets for {symbol}")
    return found


def holdings(
    account: Account, marks: dict[str, Decimal], positions: list[Position] | None = None
) -> list[futures.Holding]:
    """The account's open positions as the margin arithmetic takes them (an unpriced one at its
    entry price)."""
    positions = open_positions(account, ordered=False) if positions is None else positions
    levels = leverages(account)
    return [
        futures.Holding(
            position_state(p, p.symbol),
            levels.get(p.symbol, 1),
            brackets_for(p.symbol),
            marks.get(p.symbol, p.average_entry_price),
        )
        for p in positions
        if p.quantity
    ]


def margin(account: Account, marks: dict[str, Decimal]) -> futures.MarginState:
    """A futures account's wallet, margin and available balances at ``marks``."""
    locked = (
        BalanceRow.objects.filter(account=account, asset=QUOTE_ASSET)
        .values_list("locked", flat=True)
        .first()
    )
    return futures.margin_state(account_cash(account), holdings(account, marks), locked or ZERO)


def liquidation_prices(account: Account, marks: dict[str, Decimal]) -> dict[str, Decimal | None]:
    return futures.liquidation_prices(account_cash(account), holdings(account, marks))


def assets_of(symbol: str) -> tuple[str, str]:
    """The symbol's base and quote assets, from its rules (or its name, when it has none)."""
    rules = symbol_rules().get(symbol)
    if rules is not None:
        return rules.base_asset, rules.quote_asset
    return symbol.removesuffix(QUOTE_ASSET), QUOTE_ASSET


def fee_rate() -> Decimal:
    """The taker fee rate a market order pays (Binance's default, which the paper exchange
    charges too): what a BUY must have free beyond its notional."""
    return settings.PAPER_TAKER_FEE_RATE


# --- positions -----------------------------------------------------------------------------


def open_positions(account: Account, *, ordered: bool = True) -> list[Position]:
    """The account's open positions, newest first; in no set order with ``ordered=False``,
    for the checks on every order's way, where the sort costs a tenth of a millisecond."""
    return (_OPEN_POSITIONS if ordered else _OPEN_POSITIONS_UNORDERED).objects(account=account.pk)


def _account_param(model) -> Param:
    return Param("account", model._meta.get_field("account"))


_OPEN_POSITIONS = Prepared(
    lambda: Position.objects.filter(
        account_id=_account_param(Position), status=Position.Status.OPEN
    )
)
_OPEN_POSITIONS_UNORDERED = Prepared(
    lambda: Position.objects.filter(
        account_id=_account_param(Position), status=Position.Status.OPEN
    ).order_by()
)


def position_state(position: Position | None, symbol: str) -> PositionState:
    if position is None:
        return PositionState(symbol=symbol)
    if not position.quantity:
        # A closed position keeps its last entry price for display; the book holds none.
        return PositionState(
            symbol=symbol, realized_pnl=position.realized_pnl, fees_paid=position.fees_paid
        )
    return PositionState(
        symbol=symbol,
        quantity=position.quantity,
        avg_entry_price=position.average_entry_price,
        realized_pnl=position.realized_pnl,
        fees_paid=position.fees_paid,
        opened_at=position.opened_at,
        cost_basis=position.cost_basis,
    )


# --- balances ------------------------------------------------------------------------------


def balances(account: Account) -> dict[str, AssetBalance]:
    """Every asset the account holds or has held, free and locked; the quote asset always."""
    return _balances_of(account, BalanceRow.objects.filter(account=account))


def _balances_of(account: Account, found: Iterable[BalanceRow]) -> dict[str, AssetBalance]:
    rows = {row.asset: row for row in found}
    result = {}
    for asset in sorted({*rows, QUOTE_ASSET}):
        row = rows.get(asset)
        net = book.exact_sum(row.net, row.transferred) if row else ZERO
        locked = row.locked if row else ZERO
        start = account.starting_cash if asset == QUOTE_ASSET else ZERO
        result[asset] = AssetBalance(asset, start + net - locked, locked)
    return result


def account_cash(account: Account) -> Decimal:
    """The quote balance, free and locked: starting cash plus every fill's cash flow (sells bring
    in, buys spend, fees always cost), read from the running total: one row."""
    rows = _QUOTE_TOTAL.rows(account=account.pk)
    return _cash(account, rows[0] if rows else None)


_QUOTE_TOTAL = Prepared(
    lambda: BalanceRow.objects.filter(
        account_id=Param("account", BalanceRow._meta.get_field("account")), asset=QUOTE_ASSET
    ).values_list("net", "transferred")
)


def _cash(account: Account, quote_row: tuple[Decimal, Decimal] | None) -> Decimal:
    """Starting cash plus the quote asset's running total (its net and transferred)."""
    return account.starting_cash + (ZERO if quote_row is None else book.exact_sum(*quote_row))


def ledger_nets(account_id: int) -> dict[str, Decimal]:
    """What the account's fills add up to per asset, worked out again fill by fill: what the
    running totals must always equal. A pass over the fills; for checks, not the hot path. A
    futures account's fills move its wallet only, by their realized PnL less their fees."""
    totals: dict[str, Decimal] = {QUOTE_ASSET: ZERO}
    fills = Fill.objects.filter(order__account_id=account_id)
    if Account.objects.filter(pk=account_id, kind=AccountKind.FUTURES).exists():
        for realized, fee in fills.values_list("realized_pnl", "fee"):
            totals[QUOTE_ASSET] = book.exact_sum(
                totals[QUOTE_ASSET], futures.wallet_move(realized, fee)
            )
        return totals
    for symbol, side, quantity, price, fee in fills.values_list(
        "symbol", "side", "quantity", "price", "fee"
    ):
        base, quote = assets_of(symbol)
        for asset, moved in book.fill_moves(
            side, quantity, price, fee, base=base, quote=quote
        ).items():
            totals[asset] = book.exact_sum(totals.get(asset, ZERO), moved)
    return totals


def ledger_cash(account: Account) -> Decimal:
    """The cash worked out again from every fill of the account (and the transfers the exchange
    reported): what ``account_cash`` must always equal."""
    transferred = (
        BalanceRow.objects.filter(account=account, asset=QUOTE_ASSET)
        .values_list("transferred", flat=True)
        .first()
    )
    return account.starting_cash + ledger_nets(account.pk)[QUOTE_ASSET] + (transferred or ZERO)


def order_lock(order: Order) -> tuple[str, Decimal]:
    """What an order holds while it is open: a BUY the cost of its unfilled quantity at its
    reference price with fees, in the quote asset; a SELL its unfilled quantity of the base."""
    base, quote = assets_of(order.symbol)
    kind = order.account.kind
    if not order.is_open:
        futures_or_buy = kind == AccountKind.FUTURES or order.side == "BUY"
        return (quote if futures_or_buy else base), ZERO
    return book.order_hold(
        kind, order.side, max(order.remaining_quantity, ZERO), order.reference_price,
        fee_rate(), base=base, quote=quote, leverage=order.leverage,
        reduce_only=order.reduce_only,
    )  # fmt: skip


def _row(account_id: int, asset: str) -> BalanceRow:
    """The account's running total in ``asset``, locked; made at its first use."""
    found = _BALANCE_ROW.objects(account=account_id, asset=asset)
    if found:
        return found[0]
    row, _ = BalanceRow.objects.select_for_update().get_or_create(
        account_id=account_id, asset=asset
    )
    return row


_BALANCE_ROW = Prepared(
    lambda: BalanceRow.objects.select_for_update().filter(
        account_id=_account_param(BalanceRow),
        asset=Param("asset", BalanceRow._meta.get_field("asset")),
    )
)
# Every running total of an account, locked: the rows a fill moves are among them (the account's
# own row is locked first, so no other answer of the account waits on the rest).
_LOCKED_BALANCES = Prepared(
    lambda: BalanceRow.objects.select_for_update().filter(account_id=_account_param(BalanceRow))
)
_BALANCES = Prepared(
    lambda: BalanceRow.objects.filter(account_id=_account_param(BalanceRow)).order_by()
)


def lock_order(order: Order) -> None:
    """Holds what a new order needs, in its transaction; raises ``InsufficientBalance`` when the
    free balance, read under the row's lock, cannot pay for it (two orders checked at once
    cannot both spend the same balance). An order that closes a position may sell only what is
    held, which the same check enforces."""
    _require_transaction("lock_order")
    asset, amount = order_lock(order)
    row = _row(order.account_id, asset)
    if is_futures(order.account):
        _lock_margin(order, row, amount)
        return
    start = order.account.starting_cash if asset == QUOTE_ASSET else ZERO
    free = start + row.net + row.transferred - row.locked
    if amount > free:
        raise InsufficientBalance(
            f"{order.side} {order.quantity} {order.symbol} needs {amount.normalize():f} {asset}, "
            f"free {free.normalize():f}"
        )
    row.locked += amount
    save_fields(row, ["locked", "updated_at"])


def _lock_margin(order: Order, row: BalanceRow, amount: Decimal) -> None:
    """Holds a futures order's margin, read under the wallet row's lock; raises
    ``InsufficientMargin`` when the available balance cannot pay it. A reduce-only order (an
    exit, a liquidation) holds its fee and is never refused: getting smaller must stay possible."""
    from trading.marketdata.prices import latest_prices

    if not order.reduce_only:
        state = margin(order.account, latest_prices())
        if amount > state.available_balance:
            raise InsufficientMargin(
                f"{order.side} {order.quantity} {order.symbol} at {order.leverage}x needs margin "
                f"{_plain(amount)} USDT, available {_plain(state.available_balance)}"
            )
    row.locked += amount
    save_fields(row, ["locked", "updated_at"])


def record_fills(order: Order, fills: list[Fill], held_before: Decimal) -> None:
    """Adds the moves of newly stored ``fills`` of ``order`` to the account's balances and sets
    what the order holds to what it holds now (``held_before`` was its lock before this answer).

    Must run inside the transaction that stores the fills, with the rows as the database
    returns them. The rows stay locked until the commit, so two processes recording fills at
    once cannot both start from the same old total. Raises ``RuntimeError`` outside a
    transaction."""
    _require_transaction("record_fills")
    base, quote = assets_of(order.symbol)
    moves: dict[str, Decimal] = {base: ZERO, quote: ZERO}
    for fill in fills:
        if is_futures(order.account):
            wallet = futures.wallet_move(fill.realized_pnl, fill.fee)
            moves = {quote: book.exact_sum(moves[quote], wallet)}
            continue
        for asset, moved in book.fill_moves(
            fill.side, fill.quantity, fill.price, fill.fee, base=base, quote=quote
        ).items():
            moves[asset] = book.exact_sum(moves[asset], moved)
    lock_asset, held_now = order_lock(order)
    nets: dict[str, Decimal] | None = None
    rows = {
        row.asset: row
        for row in _LOCKED_BALANCES.objects(account=order.account_id)
        if row.asset in moves
    }
    for asset, moved in moves.items():
        row = rows.get(asset)
        created = row is None
        if created:
            row = _row(order.account_id, asset)
            # The account's first fill in the asset, or a total lost: start it from the fills,
            # these among them.
            nets = ledger_nets(order.account_id) if nets is None else nets
            row.net = nets.get(asset, ZERO)
        else:
            row.net = book.exact_sum(row.net, moved)
        if asset == lock_asset:
            row.locked = max(ZERO, row.locked - held_before + held_now)
        save_fields(row, ["net", "locked", "updated_at"])


def release_order(order: Order, held_before: Decimal) -> None:
    """Gives back what an order held once it ends without (further) fills."""
    asset, held_now = order_lock(order)
    if held_before == held_now:
        return
    row = _row(order.account_id, asset)
    row.locked = max(ZERO, row.locked - held_before + held_now)
    save_fields(row, ["locked", "updated_at"])


def rebuild_balances(account: Account) -> Decimal:
    """Sets the running totals to what the account's fills and open orders add up to and returns
    the cash: after fills were removed (a sandbox reset), or to repair a total found wrong."""
    with transaction.atomic():
        rows = BalanceRow.objects.select_for_update().filter(account=account)
        list(rows)  # locked before the fills are read, so no fill recorded meanwhile is missed
        nets = ledger_nets(account.pk)
        locks: dict[str, Decimal] = {}
        for order in Order.objects.filter(account=account, status__in=Order.OPEN_STATUSES):
            asset, amount = order_lock(order)
            locks[asset] = locks.get(asset, ZERO) + amount
        for asset in {*nets, *locks, *rows.values_list("asset", flat=True)}:
            BalanceRow.objects.update_or_create(
                account=account,
                asset=asset,
                defaults={"net": nets.get(asset, ZERO), "locked": locks.get(asset, ZERO)},
            )
    return account_cash(account)


def verify_balances() -> list[str]:
    """Checks every account's running balances against its fills; totals found wrong raise a
    ``risk.alert`` (CASH_MISMATCH) and are rebuilt from the fills, which are the record. Returns
    the names of the accounts that were wrong. A pass over every fill: for start-up."""
    from trading.execution import metrics

    wrong = []
    for account in Account.objects.all():
        with transaction.atomic():
            stored = {
                asset: net
                for asset, net in BalanceRow.objects.select_for_update()
                .filter(account=account)
                .values_list("asset", "net")
                if net
            }
            computed = {asset: net for asset, net in ledger_nets(account.pk).items() if net}
            if stored == computed:
                continue
            rebuild_balances(account)
        wrong.append(account.name)
        logger.error("balances of %s were %s, its fills say %s: rebuilt", account, stored, computed)
        metrics.RISK_ALERTS.inc(reason=AlertReason.CASH_MISMATCH)
        outbox.record(
            [
                new_event(
                    "risk.alert",
                    {
                        "account": account.name,
                        "reason": AlertReason.CASH_MISMATCH,
                        "stored": {a: str(v) for a, v in stored.items()},
                        "fills": {a: str(v) for a, v in computed.items()},
                    },
                    service="exec-risk",
                )
            ]
        )
    return wrong


def traded_assets() -> set[str]:
    """The quote asset and the base asset of every configured symbol."""
    return {QUOTE_ASSET, *(assets_of(symbol)[0] for symbol in settings.SYMBOLS)}


def reconcile_balances(
    account: Account, venue_balances: Iterable[ExchangeBalance], *, follow: bool
) -> dict[str, dict[str, object]]:
    """Compares the account's balances with the exchange's (``venue_balances``, as its adapter
    reads them: GET /api/v3/account on Binance), asset by asset over the assets the platform
    trades, free and locked together (the orders both sides hold are reconciled apart). Returns
    the assets that differ, with both totals; each difference raises a ``risk.alert``
    (BALANCE_MISMATCH) and counts in ``exec_risk_service_risk_alerts_total``, as an order the
    exchange has and the platform does not.

    Which side is right. On a live exchange (``follow=True``) the exchange holds the money, so
    for the quote asset the ledger follows it: the difference is recorded as ``transferred``
    (a deposit or a withdrawal, not PnL), and the free cash the checks read is the exchange's.
    A base asset is not followed: the ledger's positions are what the platform bought, at a cost;
    it cannot make up a position for coins it did not buy, and it must never sell coins it did
    not buy. The difference is reported for an operator to settle, and an order the exchange
    cannot pay for is refused there (-2010, INSUFFICIENT_BALANCE). On the paper exchange
    (``follow=False``) the ledger is the book of record and the paper exchange a simulation of
    the same fills: a difference is a defect, reported and not followed."""
    from trading.execution import metrics

    assets = sorted(traded_assets())
    if is_futures(account):
        if not follow:
            # The paper exchange books a futures fill's cash moves spot-style: its book is not a
            # futures wallet, and the ledger is the book of record there.
            logger.info("balances of paper futures account %s are the ledger's", account)
            return {}
        # A futures wallet is one quote balance (GET /fapi/v3/balance); no base asset moves.
        assets = [QUOTE_ASSET]
    theirs: dict[str, Decimal] = {}
    for balance in venue_balances:
        theirs[balance.asset] = theirs.get(balance.asset, ZERO) + balance.free + balance.locked
    wrong: dict[str, dict[str, object]] = {}
    with transaction.atomic():
        ours = {asset: b.total for asset, b in balances(account).items()}
        for asset in assets:
            held, reported = ours.get(asset, ZERO), theirs.get(asset, ZERO)
            if held == reported:
                continue
            followed = follow and asset == QUOTE_ASSET
            wrong[asset] = {"ledger": _plain(held), "exchange": _plain(reported),
                            "followed": followed}  # fmt: skip
            if followed:
                row = _row(account.pk, asset)
                row.transferred = book.exact_sum(row.transferred, reported, -held)
                row.save(update_fields=["transferred", "updated_at"])
        if wrong:
            outbox.record(
                [
                    new_event(
                        "risk.alert",
                        {
                            "account": account.name,
                            "reason": AlertReason.BALANCE_MISMATCH,
                            "balances": wrong,
                        },
                        service="exec-risk",
                    )
                ]
            )
    for asset, seen in wrong.items():
        logger.error("%s balance of %s: ledger %s, exchange %s", asset, account, seen["ledger"],
                     seen["exchange"])  # fmt: skip
        metrics.RISK_ALERTS.inc(reason=AlertReason.BALANCE_MISMATCH)
    return wrong


def reconcile_positions(account: Account, venue_positions: Iterable[object]) -> dict[str, dict]:
    """Compares a futures account's positions with the exchange's (``venue_positions``: objects
    with ``symbol`` and a signed ``quantity``, as GET /fapi/v3/positionRisk reports them).
    Returns the symbols that differ with both quantities; each raises a ``risk.alert``
    (POSITION_MISMATCH). Never followed: the ledger cannot make up the cost of a position it did
    not trade, so an operator settles it."""
    from trading.execution import metrics

    theirs: dict[str, Decimal] = {}
    for held in venue_positions:
        theirs[held.symbol] = theirs.get(held.symbol, ZERO) + held.quantity  # type: ignore[attr-defined]
    ours = {p.symbol: p.quantity for p in open_positions(account, ordered=False) if p.quantity}
    wrong = {
        symbol: {
            "ledger": _plain(ours.get(symbol, ZERO)),
            "exchange": _plain(theirs.get(symbol, ZERO)),
        }
        for symbol in sorted({*ours, *theirs})
        if ours.get(symbol, ZERO) != theirs.get(symbol, ZERO)
    }
    if wrong:
        outbox.record([new_event("risk.alert", {"account": account.name,
                       "reason": AlertReason.POSITION_MISMATCH, "positions": wrong},
                       service="exec-risk")])  # fmt: skip
        for symbol, seen in wrong.items():
            logger.error("%s position of %s: ledger %s, exchange %s", symbol, account,
                         seen["ledger"], seen["exchange"])  # fmt: skip
            metrics.RISK_ALERTS.inc(reason=AlertReason.POSITION_MISMATCH)
    return wrong


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _require_transaction(name: str) -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(f"{name} must run in the transaction that stores the fills")


# --- valuation and daily PnL ---------------------------------------------------------------


def utc_day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def valuation(account: Account, marks: dict[str, Decimal]) -> Valuation:
    return _value(account, account_cash(account), open_positions(account, ordered=False), marks)


@dataclass(frozen=True)
class Snapshot:
    """An account's open positions, balances and valuation, from one read of each: what the
    pre-trade checks look at on every order's way."""

    positions: list[Position]
    balances: dict[str, AssetBalance]
    valuation: Valuation


def snapshot(account: Account, marks: dict[str, Decimal]) -> Snapshot:
    positions = open_positions(account, ordered=False)
    rows = _BALANCES.objects(account=account.pk)
    quote = next(((r.net, r.transferred) for r in rows if r.asset == QUOTE_ASSET), None)
    valued = _value(account, _cash(account, quote), positions, marks)
    return Snapshot(positions, _balances_of(account, rows), valued)


def _value(
    account: Account, cash: Decimal, positions: list[Position], marks: dict[str, Decimal]
) -> Valuation:
    """Spot: cash plus the holdings at their marks. Futures: the wallet plus the positions'
    unrealized PnL (the margin balance): a contract is worth what it would settle for."""
    states = [position_state(p, p.symbol) for p in positions]
    current = book.value_account(cash, states, marks)
    if not is_futures(account):
        return current
    return Valuation(
        cash=current.cash,
        market_value=current.unrealized_pnl,
        exposure=current.exposure,
        unrealized_pnl=current.unrealized_pnl,
        unrealized_by_symbol=current.unrealized_by_symbol,
    )


def account_equity(account: Account, marks: dict[str, Decimal]) -> Decimal:
    """Cash plus the market value of open positions (at entry price when unpriced)."""
    return valuation(account, marks).equity


def fills_since(account: Account, start: datetime) -> QuerySet[Fill]:
    """The account's fills at or after ``start``."""
    return _fills_since(start, account.pk)


def _fills_since(start: datetime | Param, account_id: int | Param) -> QuerySet[Fill]:
    """Found through their time: the account is compared after the join (``+ 0``), so SQLite
    does not walk every order the account ever placed to find today's few fills."""
    return (
        Fill.objects.filter(ts__gte=start)
        .alias(fill_account=F("order__account_id") + 0)
        .filter(fill_account=account_id)
    )


def realized_since(account: Account, start: datetime) -> Decimal:
    """Realized PnL net of fees of the fills since ``start``."""
    totals = _REALIZED_SINCE.rows(start=start, account=account.pk)
    realized, fees = totals[0] if totals else (None, None)
    return (realized or ZERO) - (fees or ZERO)


# ``fills_since``'s sums, as one group (none without fills).
_REALIZED_SINCE = Prepared(
    lambda: (
        _fills_since(
            Param("start", Fill._meta.get_field("ts")),
            Param("account", Order._meta.get_field("account")),
        )
        .values("order__account_id")
        .annotate(realized=Sum("realized_pnl"), fees=Sum("fee"))
        .values_list("realized", "fees")
    )
)


def day_open(account: Account, marks: dict[str, Decimal], now: datetime | None = None) -> Decimal:
    """The unrealized PnL at 00:00 UTC of ``now``'s day, recorded at the first read of the day:
    the positions held at 00:00 (from the fills before it) at ``marks`` (an unpriced symbol at
    the price of its last fill)."""
    start = utc_day_start(now or timezone.now())
    # A day's open is written once and never changes: read once per process (the key carries
    # the account's creation time, so an account made again under an old id is not mistaken).
    key = (account.pk, account.created_at, start.date())
    if key in _day_opens:
        return _day_opens[key]
    recorded = (
        DayOpen.objects.filter(account=account, day=start.date())
        .values_list("unrealized_pnl", flat=True)
        .first()
    )
    if recorded is not None:
        _remember_day_open(key, recorded)
        return recorded
    before = Fill.objects.filter(order__account=account, ts__lt=start)
    quantities: dict[str, Decimal] = {}
    last_price: dict[str, Decimal] = {}
    flows = ZERO
    net_realized = ZERO
    for symbol, side, quantity, price, fee, realized in before.order_by("ts", "id").values_list(
        "symbol", "side", "quantity", "price", "fee", "realized_pnl"
    ):
        signed = quantity if side == "BUY" else -quantity
        quantities[symbol] = book.exact_sum(quantities.get(symbol, ZERO), signed)
        last_price[symbol] = price
        flows = book.total_cash_flow([(side, quantity, price, fee)], start=flows)
        net_realized = book.exact_sum(net_realized, realized, -fee)
    used = {s: marks.get(s, last_price[s]) for s, q in quantities.items() if q}
    unrealized = book.unrealized_at_open(quantities, used, flows, net_realized)
    try:
        with transaction.atomic():
            DayOpen.objects.create(
                account=account,
                day=start.date(),
                unrealized_pnl=unrealized,
                marks={s: str(p) for s, p in used.items()},
                recorded_at=now or timezone.now(),
            )
    except IntegrityError:  # another process recorded the day first: its figure stands
        unrealized = DayOpen.objects.get(account=account, day=start.date()).unrealized_pnl
        _remember_day_open(key, unrealized)
    else:
        transaction.on_commit(lambda: _remember_day_open(key, unrealized))
    return unrealized


# The day opens this process has read: a handful of accounts, a key a day.
_day_opens: dict[tuple, Decimal] = {}
_DAY_OPENS_KEPT = 64


def _remember_day_open(key: tuple, unrealized: Decimal) -> None:
    if len(_day_opens) >= _DAY_OPENS_KEPT:
        _day_opens.clear()
    _day_opens[key] = unrealized


def daily_pnl(
    account: Account,
    marks: dict[str, Decimal],
    now: datetime | None = None,
    *,
    current: Valuation | None = None,
) -> Decimal:
    """PnL since 00:00 UTC: today's realized PnL net of fees plus the change of unrealized PnL
    since the day's open. The one figure of the daily loss limit, the API, metrics and pages."""
    now = now or timezone.now()
    current = current or valuation(account, marks)
    return book.daily_pnl(
        realized_since(account, utc_day_start(now)),
        current.unrealized_pnl,
        day_open(account, marks, now),
    )


def daily_trades(account: Account, now: datetime | None = None) -> int:
    return fills_since(account, utc_day_start(now or timezone.now())).count()


@dataclass(frozen=True)
class Book:
    """An account at one moment, for every reader: valuation, realized and daily PnL."""

    account: Account
    kind: AccountKind
    valuation: Valuation
    balances: dict[str, AssetBalance]
    realized_pnl: Decimal
    daily_pnl: Decimal
    positions: list[Position]

    @property
    def equity(self) -> Decimal:
        return self.valuation.equity


def read_book(account: Account, marks: dict[str, Decimal], now: datetime | None = None) -> Book:
    positions = open_positions(account)
    current = _value(account, account_cash(account), positions, marks)
    realized = Position.objects.filter(account=account).aggregate(
        realized=Sum("realized_pnl"), fees=Sum("fees_paid")
    )
    return Book(
        account=account,
        kind=AccountKind(account.kind),
        valuation=current,
        balances=balances(account),
        realized_pnl=(realized["realized"] or ZERO) - (realized["fees"] or ZERO),
        daily_pnl=daily_pnl(account, marks, now, current=current),
        positions=positions,
    )


def portfolio_summary(account: Account, marks: dict[str, Decimal]) -> dict:
    """What ``GET /api/v1/portfolio``, the dashboard and the operators' bot show."""
    state = read_book(account, marks)
    current = state.valuation
    return {
        "account": account.name,
        "kind": account.kind,
        "venue": account.venue,
        "starting_cash": str(account.starting_cash),
        "cash": str(current.cash),
        "balances": {
            asset: {"free": str(b.free), "locked": str(b.locked)}
            for asset, b in state.balances.items()
            if b.total or asset == QUOTE_ASSET
        },
        "equity": str(current.equity),
        "peak_equity": str(max(account.peak_equity, current.equity)),
        "exposure": {symbol: str(value) for symbol, value in current.exposure.items()},
        "total_exposure": str(current.total_exposure),
        "open_positions": len(current.exposure),
        "realized_pnl": str(state.realized_pnl),
        "unrealized_pnl": str(current.unrealized_pnl),
        "daily_pnl": str(state.daily_pnl),
        "daily_trades": daily_trades(account),
        # Read here rather than through the risk services, which sit above the ledger.
        "trading_state": TradingStateRecord.objects.get(account=account).state,
        "equity_curve": [
            {"ts": snap.ts.isoformat(), "equity": str(snap.equity)}
            for snap in reversed(account.equity.all()[:200])
        ],
        **({"margin": futures_summary(account, marks)} if is_futures(account) else {}),
    }


def futures_summary(account: Account, marks: dict[str, Decimal]) -> dict:
    """A futures account's margin, and per position its leverage, margins and liquidation
    price (cross margin, one-way). Funding is not applied: the platform has no funding-rate
    history, and says so here."""
    held = holdings(account, marks)
    state = futures.margin_state(
        account_cash(account), held, margin(account, marks).open_order_margin
    )
    prices = futures.liquidation_prices(state.wallet_balance, held)
    return {
        "mode": "cross, one-way",
        "wallet_balance": str(state.wallet_balance),
        "unrealized_pnl": str(state.unrealized_pnl),
        "margin_balance": str(state.margin_balance),
        "initial_margin": str(state.initial_margin),
        "maintenance_margin": str(state.maintenance_margin),
        "open_order_margin": str(state.open_order_margin),
        "available_balance": str(state.available_balance),
        "funding": "not applied: no funding-rate history is bundled",
        "positions": {
            h.state.symbol: {
                "leverage": h.leverage,
                "initial_margin": str(h.initial_margin),
                "maintenance_margin": str(h.maintenance_margin),
                "liquidation_price": None
                if prices[h.state.symbol] is None
                else str(prices[h.state.symbol]),
            }
            for h in held
        },
    }


def position_unrealized(position: Position, mark: Decimal | None) -> Decimal:
    """One position's unrealized PnL at ``mark`` (zero without one), from its entry cost."""
    if mark is None:
        return ZERO
    return book.unrealized_pnl(position_state(position, position.symbol), mark)


def snapshot_equity(account: Account, marks: dict[str, Decimal]) -> None:
    """Records the account's equity, cash, exposure and PnL now (the equity curve)."""
    from trading.models import EquitySnapshot

    state = read_book(account, marks)
    EquitySnapshot.objects.create(
        account=account,
        ts=timezone.now(),
        equity=state.equity,
        cash=state.valuation.cash,
        exposure=state.valuation.total_exposure,
        realized_pnl=state.realized_pnl,
        unrealized_pnl=state.valuation.unrealized_pnl,
    )
