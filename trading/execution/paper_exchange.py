"""The paper exchange: an ``ExchangeAdapter`` that fills orders on the market data the platform
sees, with the fees, slippage and volume-bounded partial fills of ``trading.execution.paper``.

Its book lives in Redis, not in a process, so every exec-risk worker on every host sees the same
orders: ``<prefix>:paper:orders`` maps a client order id to the order, ``<prefix>:paper:open``
holds the ids still working. Like Binance, it refuses a second order with a client order id it
already has, and answers queries by that id.

A market order fills at once up to the share of the latest bar's volume that is still free; the
rest stays open and fills on the following bars (``on_bar``).

Balances, as Binance spot keeps them. Every account has a book of its own
(``<prefix>:paper:balances:<book>``, totals per asset, and ``<prefix>:paper:locked:<book>``, what
its open orders hold), seeded with the account's starting cash in the quote asset the first time
it is used. An order the free balance cannot pay for is refused as Binance refuses it (-2010,
"Account has insufficient balance for requested action.", permanent): a SELL needs its quantity
free in the base asset, a BUY its cost at the taker price with the taker fee free in the quote
asset. A placed order holds what it needs until it fills or ends. A BUY's rest that fills on a
later bar, at a price that moved against it, fills only what its hold and the free balance still
pay for; when that is nothing, the order expires, as a Binance market order that runs out of
balance does. So no balance ever goes below zero.

A futures account's book (``margin=True``) trades USDⓈ-M perpetuals: its margin is held and
checked by the ledger (``trading.ledger.futures``, the same arithmetic as the backtest's), under
the lock of the account's wallet, so the paper exchange holds nothing for its orders, refuses
none for want of a balance, and fills a SELL with no position as a short. Such books are named
in ``<prefix>:paper:margin_books``, so a fill on a later bar is booked by the same rule.

The platform's ledger (``trading.ledger``) is the book of record; this is the venue it trades on.
Both move by the same fills, so their totals per asset agree; the start-up reconciliation
compares them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

import redis
from django.conf import settings

from trading.execution.adapter import (
    Balance,
    ExchangeError,
    ExchangeFill,
    OrderRequest,
    OrderResult,
    OrderStatus,
    rules_of,
)
from trading.execution.paper import (
    PaperConfig,
    SimFill,
    book_trade,
    placement_hold,
    simulate_market_fill,
)
from trading.marketdata.bars import Bar, datetime_to_ms
from trading.marketdata.prices import latest_quote
from trading.marketdata.symbols import SymbolRules, load_bundled_rules
from trading.store import redis_client, rkey

ZERO = Decimal("0")
_EXACT = Context(prec=50)
QUOTE_ASSET = "USDT"

DEFAULT_BOOK = "default"
INSUFFICIENT_BALANCE = -2010
INSUFFICIENT_BALANCE_MESSAGE = "Account has insufficient balance for requested action."


def insufficient_balance() -> ExchangeError:
    return ExchangeError(
        INSUFFICIENT_BALANCE_MESSAGE, code=INSUFFICIENT_BALANCE, retryable=False, http_status=400
    )


def _order_to_json(result: OrderResult, book: str, held: Decimal) -> str:
    return json.dumps(
        {
            "book": book,
            "held": str(held),
            "client_order_id": result.client_order_id,
            "exchange_order_id": result.exchange_order_id,
            "symbol": result.symbol,
            "side": result.side,
            "status": str(result.status),
            "orig_quantity": str(result.orig_quantity),
            "executed_quantity": str(result.executed_quantity),
            "cumulative_quote": str(result.cumulative_quote),
            "transact_time": result.transact_time.isoformat() if result.transact_time else None,
        }
    )


def _order_from_json(raw: str) -> OrderResult:
    return _stored_from_json(raw)[0]


def _stored_from_json(raw: str) -> tuple[OrderResult, str, Decimal]:
    """The order, the book it trades for and what it still holds of that book."""
    data = json.loads(raw)
    result = OrderResult(
        client_order_id=data["client_order_id"],
        exchange_order_id=data["exchange_order_id"],
        symbol=data["symbol"],
        side=data["side"],
        status=OrderStatus(data["status"]),
        orig_quantity=Decimal(data["orig_quantity"]),
        executed_quantity=Decimal(data["executed_quantity"]),
        cumulative_quote=Decimal(data["cumulative_quote"]),
        fills=(),
        transact_time=datetime.fromisoformat(data["transact_time"])
        if data["transact_time"]
        else None,
    )
    return result, data.get("book", DEFAULT_BOOK), Decimal(data.get("held", "0"))


def _amounts(assets: tuple[str, ...], texts: list[str | None]) -> dict[str, Decimal]:
    return {asset: Decimal(text or "0") for asset, text in zip(assets, texts, strict=True)}


@dataclass(frozen=True, slots=True)
class _Booking:
    """What one fill does to an order and its book: the order after it, the quantity filled at
    ``price`` (zero when the book pays for none of it and the order expires), the book's new
    totals (none when it expires), and the asset the order holds with its new locked amount and
    what the order still holds."""

    order: OrderResult
    quantity: Decimal
    price: Decimal
    totals: dict[str, Decimal]
    hold_asset: str
    locked: Decimal
    held: Decimal


class PaperExchange:
    name = "paper"

    def __init__(
        self,
        config: PaperConfig,
        rules: dict[str, SymbolRules] | None = None,
        *,
        client: redis.Redis | None = None,
        clock=lambda: datetime.now(UTC),
        book: str = DEFAULT_BOOK,
        starting_cash: Decimal | None = None,
        margin: bool = False,
    ) -> None:
        self.margin = margin
        self.config = config
        self.rules = rules or load_bundled_rules()
        self._client = client
        self.clock = clock
        self.book = book
        self.starting_cash = settings.STARTING_CASH if starting_cash is None else starting_cash

    def for_account(
        self, book: str, starting_cash: Decimal, *, margin: bool = False
    ) -> PaperExchange:
        """The same exchange trading for another account's book (a futures one with
        ``margin``)."""
        return PaperExchange(
            self.config,
            self.rules,
            client=self._client,
            clock=self.clock,
            book=book,
            starting_cash=starting_cash,
            margin=margin,
        )

    def _margin_books_key(self) -> str:
        return rkey("paper", "margin_books")

    @property
    def client(self) -> redis.Redis:
        return self._client or redis_client()

    def _orders_key(self) -> str:
        return rkey("paper", "orders")

    def _open_key(self) -> str:
        return rkey("paper", "open")

    def _balances_key(self, book: str) -> str:
        return rkey("paper", "balances", book)

    def _locked_key(self, book: str) -> str:
        return rkey("paper", "locked", book)

    def deposit(self, asset: str, amount: Decimal) -> None:
        """Adds ``amount`` of ``asset`` to the book, as a transfer into the account would (the
        book is seeded first, so the starting cash stays)."""
        key = self._balances_key(self.book)

        def add(pipe: redis.client.Pipeline) -> None:
            seeded = pipe.exists(key)
            total = Decimal(pipe.hget(key, asset) or "0")
            if not seeded and asset == QUOTE_ASSET:
                total = self.starting_cash
            pipe.multi()
            if not seeded:
                pipe.hset(key, QUOTE_ASSET, str(self.starting_cash))
            pipe.hset(key, asset, str(_EXACT.add(total, amount)))

        self.client.transaction(add, key, self._orders_key())

    def reset_balances(self) -> None:
        """Forgets this book's balances: the next order starts it from its starting cash again
        (the system checks' sandbox, whose ledger starts over), and whether it traded on
        margin: the sandbox may start over as the other kind of account."""
        self.client.delete(self._balances_key(self.book), self._locked_key(self.book))
        self.client.srem(self._margin_books_key(), self.book)

    def _rules(self, symbol: str) -> SymbolRules:
        return rules_of(self.rules, symbol)

    # --- the adapter interface ------------------------------------------------------------

    def ping(self) -> None:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise ExchangeError(f"paper exchange unavailable: {exc}", retryable=True) from exc

    def validate_order(self, req: OrderRequest) -> dict[str, Any]:
        self._rules(req.symbol)
        if req.order_type != "MARKET":
            raise ExchangeError(
                "the paper exchange takes MARKET orders", code=-1116, retryable=False
            )
        return {}

    def place_order(self, req: OrderRequest) -> OrderResult:
        self.validate_order(req)
        quote = latest_quote(req.symbol, client=self.client)
        if quote is None:
            raise ExchangeError(f"no market data for {req.symbol} yet", retryable=True)
        rules = self._rules(req.symbol)
        now = self.clock()
        result = OrderResult.accepted(req, f"paper-{req.client_order_id}", now)
        asset = rules.base_asset if req.side == "SELL" else rules.quote_asset
        need = placement_hold(
            req.side, req.quantity, quote.bar.close, self.config, tick_size=rules.tick_size
        )
        if self.margin:
            # The ledger holds and checks the margin; nothing is held of the book here.
            need, asset = ZERO, rules.quote_asset
        balances_key, locked_key = self._balances_key(self.book), self._locked_key(self.book)
        orders_key, used_key = self._orders_key(), self._used_key(quote.bar)
        assets = (rules.base_asset, rules.quote_asset)
        placed: dict[str, Any] = {}

        # Under WATCH: the duplicate check, the free balance, the hold and the fill the bar still
        # allows are one decision. The bar's used volume is watched too, so two orders filling on
        # one bar at once cannot both take what is left of it.
        def place(pipe: redis.client.Pipeline) -> None:
            placed.clear()
            reads = self._reads()
            if self.margin:
                # Named before the decision, whatever it is, so this fill and every later one
                # are booked as a futures book's.
                reads.sadd(self._margin_books_key(), self.book)
            reads.hexists(orders_key, req.client_order_id)
            reads.exists(balances_key)
            self._queue_book_reads(reads, self.book, assets)
            reads.get(used_key)
            *_, duplicate, seeded, totals_text, locked_texts, margin, used = reads.execute()
            if duplicate:
                raise ExchangeError("Duplicate order sent.", code=-2010, retryable=False)
            totals, locked = _amounts(assets, totals_text), _amounts(assets, locked_texts)
            if not seeded:
                totals[rules.quote_asset] = self.starting_cash
            if not self.margin and need > _EXACT.subtract(totals[asset], locked[asset]):
                raise insufficient_balance()
            locked[asset] = _EXACT.add(locked[asset], need)
            sim = self._simulate(result, quote.bar, Decimal(used or "0"), rules)
            pipe.multi()
            if not seeded:
                pipe.hset(balances_key, rules.quote_asset, str(self.starting_cash))
            pipe.hset(orders_key, req.client_order_id, _order_to_json(result, self.book, need))
            pipe.sadd(self._open_key(), req.client_order_id)
            pipe.hset(locked_key, asset, str(locked[asset]))
            if sim is not None:
                booking = self._booking(result, need, sim, rules, totals, locked, bool(margin))
                number_at = self._queue_booking(pipe, booking, self.book, used_key)
                placed.update(booking=booking, number_at=number_at)

        results = self.client.transaction(place, orders_key, balances_key, locked_key, used_key)
        if not placed:
            return result
        number = results[placed["number_at"]] if placed["number_at"] is not None else None
        return self._fill_result(result, placed["booking"], number)

    def query_order(self, symbol: str, client_order_id: str) -> OrderResult:
        raw = self.client.hget(self._orders_key(), client_order_id)
        if raw is None:
            raise ExchangeError("Order does not exist.", code=-2013, retryable=False)
        return _order_from_json(raw)

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult:
        order = self.query_order(symbol, client_order_id)
        if not order.is_open:
            raise ExchangeError("Unknown order sent.", code=-2011, retryable=False)
        cancelled = replace(order, status=OrderStatus.CANCELED, transact_time=self.clock())
        self._end(cancelled)
        return cancelled

    def open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        ids = sorted(self.client.smembers(self._open_key()))
        if not ids:
            return []
        raws = self.client.hmget(self._orders_key(), ids)
        orders = [_order_from_json(raw) for raw in raws if raw]
        return [o for o in orders if o.is_open and (symbol is None or o.symbol == symbol)]

    def balances(self) -> list[Balance]:
        """The book's balances, free and locked, per asset it holds or has held; before its
        first order, its starting cash in the quote asset."""
        totals = self.client.hgetall(self._balances_key(self.book))
        if not totals:
            return [Balance(QUOTE_ASSET, self.starting_cash, ZERO)]
        locked = self.client.hgetall(self._locked_key(self.book))
        result = []
        for asset, total in sorted(totals.items()):
            held = Decimal(locked.get(asset, "0"))
            result.append(Balance(asset, _EXACT.subtract(Decimal(total), held), held))
        return result

    def exchange_info(self, symbols: list[str]) -> dict[str, Any]:
        return {"symbols": [self._rules(s).symbol for s in symbols], "source": "bundled"}

    # --- market data ----------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> list[OrderResult]:
        """Fills open orders of the bar's symbol further; returns each order that changed (filled
        further, or expired for want of balance), with the new fills only."""
        changed = []
        for order in self.open_orders(bar.symbol):
            updated = self._fill_on_bar(order, bar)
            if updated.fills or updated.status != order.status:
                changed.append(updated)
        return changed

    def _used_key(self, bar: Bar) -> str:
        return rkey("paper", "used", bar.symbol, datetime_to_ms(bar.close_time))

    def _fill_on_bar(self, order: OrderResult, bar: Bar) -> OrderResult:
        """Fills what the bar still allows of ``order``."""
        rules = self._rules(order.symbol)
        # A bar already used up, the common case for an order's rest, costs one read.
        already = Decimal(self.client.get(self._used_key(bar)) or "0")
        if self._simulate(order, bar, already, rules) is None:
            return order
        booked = self._book_fill(order, bar, rules)
        if booked is None:
            return order
        return self._fill_result(order, *booked)

    def _simulate(
        self, order: OrderResult, bar: Bar, already: Decimal, rules: SymbolRules
    ) -> SimFill | None:
        """The fill the bar allows of the rest of ``order``, when ``already`` is what it has
        filled for any order so far; None when it allows none."""
        sim = simulate_market_fill(
            order.side,
            order.orig_quantity - order.executed_quantity,
            bar.close,
            bar.volume,
            self.config,
            already,
            tick_size=rules.tick_size,
            step_size=rules.market_step_size or rules.step_size,
        )
        if sim is None or sim.quantity <= 0:
            return None
        return sim

    def _fill_result(
        self, order: OrderResult, booking: _Booking, number: int | None
    ) -> OrderResult:
        """What a fill returns to the caller: the order with the one new fill, or ``order``
        expired."""
        if not booking.quantity:
            return replace(order, status=OrderStatus.EXPIRED, transact_time=self.clock())
        quantity, price = booking.quantity, booking.price
        fill = ExchangeFill(
            price=price,
            quantity=quantity,
            commission=_EXACT.multiply(
                self.config.taker_fee_rate, _EXACT.multiply(quantity, price)
            ),
            commission_asset=QUOTE_ASSET,
            trade_id=f"{order.exchange_order_id}-{number}",
        )
        return replace(booking.order, fills=(fill,))

    def _queue_store(
        self, pipe: redis.client.Pipeline, order: OrderResult, book: str, held: Decimal
    ) -> None:
        pipe.hset(self._orders_key(), order.client_order_id, _order_to_json(order, book, held))
        if order.is_open:
            pipe.sadd(self._open_key(), order.client_order_id)
        else:
            pipe.srem(self._open_key(), order.client_order_id)

    def _end(self, order: OrderResult) -> None:
        """Stores an order that ended without a fill, giving back what it held."""
        orders_key = self._orders_key()

        def end(pipe: redis.client.Pipeline) -> None:
            _stored, book, held = _stored_from_json(pipe.hget(orders_key, order.client_order_id))
            asset = self._hold_asset(order)
            locked_key = self._locked_key(book)
            locked = Decimal(pipe.hget(locked_key, asset) or "0")
            pipe.multi()
            self._queue_store(pipe, order, book, ZERO)
            pipe.hset(locked_key, asset, str(max(ZERO, _EXACT.subtract(locked, held))))

        self.client.transaction(end, orders_key)

    def _reads(self) -> redis.client.Pipeline:
        """Reads for a transaction's decision, in one round trip. Made after its WATCH, they see
        what the EXEC is checked against: a watched key changed after them fails the EXEC, on
        whichever connection they were read."""
        return self.client.pipeline(transaction=False)

    def _hold_asset(self, order: OrderResult) -> str:
        rules = self._rules(order.symbol)
        return rules.base_asset if order.side == "SELL" else rules.quote_asset

    def _queue_book_reads(
        self, reads: redis.client.Pipeline, book: str, assets: tuple[str, ...]
    ) -> None:
        """Queues the reads a fill is decided on: the book's totals and locked amounts of
        ``assets`` and whether it is a futures book."""
        reads.hmget(self._balances_key(book), assets)
        reads.hmget(self._locked_key(book), assets)
        reads.sismember(self._margin_books_key(), book)

    def _booking(
        self,
        current: OrderResult,
        held: Decimal,
        sim: SimFill,
        rules: SymbolRules,
        totals: dict[str, Decimal],
        locked: dict[str, Decimal],
        margin: bool,
    ) -> _Booking:
        """Decides a fill of up to ``sim``'s quantity of ``current``, which holds ``held``, on a
        book with ``totals`` and ``locked`` amounts of the symbol's assets."""
        hold_asset = rules.quote_asset if margin else self._hold_asset(current)
        hold = locked[hold_asset]
        # The arithmetic is the backtest's too (``trading.execution.paper.book_trade``).
        trade = book_trade(
            current.side,
            sim.quantity,
            sim.price,
            self.config,
            held=held,
            # A futures fill is paid for by the margin the ledger holds, not the book's cash.
            free_quote=Decimal("Infinity")
            if margin
            else _EXACT.subtract(totals[rules.quote_asset], hold),
            step_size=rules.market_step_size or rules.step_size,
        )
        if trade is None:
            expired = replace(current, status=OrderStatus.EXPIRED, transact_time=self.clock())
            given_back = max(ZERO, _EXACT.subtract(hold, held))
            return _Booking(expired, ZERO, sim.price, {}, hold_asset, given_back, ZERO)
        amount = trade.quantity
        executed = current.executed_quantity + amount
        updated = replace(
            current,
            status=OrderStatus.FILLED
            if executed >= current.orig_quantity
            else OrderStatus.PARTIALLY_FILLED,
            executed_quantity=executed,
            cumulative_quote=current.cumulative_quote + _EXACT.multiply(amount, trade.price),
            transact_time=self.clock(),
        )
        released = held if not updated.is_open else min(held, trade.spent)
        moves = {rules.base_asset: trade.base_move, rules.quote_asset: trade.quote_move}
        return _Booking(
            updated,
            amount,
            trade.price,
            {asset: _EXACT.add(totals[asset], delta) for asset, delta in moves.items()},
            hold_asset,
            max(ZERO, _EXACT.subtract(hold, released)),
            _EXACT.subtract(held, released),
        )

    def _queue_booking(
        self, pipe: redis.client.Pipeline, booking: _Booking, book: str, used_key: str
    ) -> int | None:
        """Queues the writes of ``booking`` in a transaction: the bar's volume it used, its trade
        number, the order, the balances it moved and what the order still holds. Returns where
        the trade number is among the transaction's results (None when the order expires)."""
        number_at = None
        if booking.quantity:
            pipe.incrbyfloat(used_key, float(booking.quantity))
            pipe.expire(used_key, 86_400)
            number_at = len(pipe)
            pipe.hincrby(rkey("paper", "trade_seq"), booking.order.client_order_id, 1)
        self._queue_store(pipe, booking.order, book, booking.held)
        if booking.quantity:
            pipe.hset(self._balances_key(book), mapping={
                asset: str(total) for asset, total in booking.totals.items()
            })  # fmt: skip
        pipe.hset(self._locked_key(book), booking.hold_asset, str(booking.locked))
        return number_at

    def _book_fill(
        self, order: OrderResult, bar: Bar, rules: SymbolRules
    ) -> tuple[_Booking, int | None] | None:
        """Books the fill the bar allows of ``order``'s rest all at once. Returns the booking
        and the trade number (None when the book cannot pay for any of it: the order is then
        expired, its hold given back); None when the bar allows nothing or the order is no
        longer open."""
        orders_key, used_key = self._orders_key(), self._used_key(bar)
        assets = (rules.base_asset, rules.quote_asset)
        filled: dict[str, Any] = {}

        # Decimal sums under WATCH, not HINCRBYFLOAT: a float loses digits of fees and notionals.
        def book(pipe: redis.client.Pipeline) -> None:
            filled.clear()
            current, book_id, held = _stored_from_json(pipe.hget(orders_key, order.client_order_id))
            reads = self._reads()
            self._queue_book_reads(reads, book_id, assets)
            reads.get(used_key)
            totals_text, locked_texts, margin, used = reads.execute()
            # Another process may have filled or ended it since it was listed.
            sim = (
                self._simulate(current, bar, Decimal(used or "0"), rules)
                if current.is_open
                else None
            )
            if sim is None:
                return
            totals, locked = _amounts(assets, totals_text), _amounts(assets, locked_texts)
            booking = self._booking(current, held, sim, rules, totals, locked, bool(margin))
            pipe.multi()
            number_at = self._queue_booking(pipe, booking, book_id, used_key)
            filled.update(booking=booking, number_at=number_at)

        # The order's hold and its book move together; every book an order can trade for is
        # watched through the order's record, which every change to a hold rewrites. The bar's
        # used volume is watched as placement watches it.
        results = self.client.transaction(book, orders_key, used_key)
        if not filled:
            return None
        number_at = filled["number_at"]
        number = results[number_at] if number_at is not None else None
        return filled["booking"], number
