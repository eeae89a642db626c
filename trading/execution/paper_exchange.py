"""The paper exchange: an ``ExchangeAdapter`` that fills orders on the market data the platform
sees, with the fees, slippage and volume-bounded partial fills of ``trading.execution.paper``.

Its book lives in Redis, not in a process, so every exec-risk worker on every host sees the same
orders: ``<prefix>:paper:orders`` maps a client order id to the order, ``<prefix>:paper:open``
holds the ids still working. Like Binance, it refuses a second order with a client order id it
already has, and answers queries by that id.

A market order fills at once up to the share of the latest bar's volume that is still free; the
rest stays open and fills on the following bars (``on_bar``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

import redis

from trading.execution.adapter import (
    Balance,
    ExchangeError,
    ExchangeFill,
    OrderRequest,
    OrderResult,
    OrderStatus,
)
from trading.execution.paper import PaperConfig, simulate_market_fill
from trading.marketdata.bars import Bar, datetime_to_ms
from trading.marketdata.prices import latest_quote
from trading.marketdata.symbols import SymbolRules, load_bundled_rules
from trading.store import redis_client, rkey

ZERO = Decimal("0")
_EXACT = Context(prec=50)
QUOTE_ASSET = "USDT"

# Takes a new order and answers how much of its bar is filled already, in one round trip; nil,
# and nothing kept, when the client order id is known. KEYS: orders, open ids, the bar's volume
# used. ARGV: client order id, the order.
_PLACE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
    return false
end
redis.call('SADD', KEYS[2], ARGV[1])
return redis.call('GET', KEYS[3]) or '0'
"""


def _order_to_json(result: OrderResult) -> str:
    return json.dumps(
        {
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
    data = json.loads(raw)
    return OrderResult(
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


class PaperExchange:
    name = "paper"

    def __init__(
        self,
        config: PaperConfig,
        rules: dict[str, SymbolRules] | None = None,
        *,
        client: redis.Redis | None = None,
        clock=lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.rules = rules or load_bundled_rules()
        self._client = client
        self.clock = clock

    @property
    def client(self) -> redis.Redis:
        return self._client or redis_client()

    def _orders_key(self) -> str:
        return rkey("paper", "orders")

    def _open_key(self) -> str:
        return rkey("paper", "open")

    def _rules(self, symbol: str) -> SymbolRules:
        try:
            return self.rules[symbol]
        except KeyError:
            raise ExchangeError(
                f"Invalid symbol {symbol}", code=-1121, retryable=False, http_status=400
            ) from None

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
        now = self.clock()
        result = OrderResult(
            client_order_id=req.client_order_id,
            exchange_order_id=f"paper-{req.client_order_id}",
            symbol=req.symbol,
            side=req.side,
            status=OrderStatus.NEW,
            orig_quantity=req.quantity,
            executed_quantity=ZERO,
            cumulative_quote=ZERO,
            fills=(),
            transact_time=now,
        )
        used = self.client.register_script(_PLACE)(
            keys=[self._orders_key(), self._open_key(), self._used_key(quote.bar)],
            args=[req.client_order_id, _order_to_json(result)],
        )
        if used is None:
            raise ExchangeError("Duplicate order sent.", code=-2010, retryable=False)
        return self._fill_on_bar(result, quote.bar, Decimal(used))

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
        self._store(cancelled)
        return cancelled

    def open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        ids = sorted(self.client.smembers(self._open_key()))
        if not ids:
            return []
        raws = self.client.hmget(self._orders_key(), ids)
        orders = [_order_from_json(raw) for raw in raws if raw]
        return [o for o in orders if o.is_open and (symbol is None or o.symbol == symbol)]

    def balances(self) -> list[Balance]:
        """What the paper fills have moved, per asset, beside an unlimited quote balance."""
        raw = self.client.hgetall(rkey("paper", "balances"))
        return [Balance(asset, Decimal(v), ZERO) for asset, v in sorted(raw.items())]

    def exchange_info(self, symbols: list[str]) -> dict[str, Any]:
        return {"symbols": [self._rules(s).symbol for s in symbols], "source": "bundled"}

    # --- market data ----------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> list[OrderResult]:
        """Fills open orders of the bar's symbol further; returns each order that changed, with
        the new fills only."""
        changed = []
        for order in self.open_orders(bar.symbol):
            updated = self._fill_on_bar(order, bar)
            if updated.fills:
                changed.append(updated)
        return changed

    def _used_key(self, bar: Bar) -> str:
        return rkey("paper", "used", bar.symbol, datetime_to_ms(bar.close_time))

    def _fill_on_bar(
        self, order: OrderResult, bar: Bar, already: Decimal | None = None
    ) -> OrderResult:
        """Fills what the bar still allows of ``order``; ``already`` is what the bar has filled
        for any order so far (read here when not given)."""
        rules = self._rules(order.symbol)
        used_key = self._used_key(bar)
        if already is None:
            already = Decimal(self.client.get(used_key) or "0")
        remaining = order.orig_quantity - order.executed_quantity
        sim = simulate_market_fill(
            order.side,
            remaining,
            bar.close,
            bar.volume,
            self.config,
            already,
            tick_size=rules.tick_size,
            step_size=rules.market_step_size or rules.step_size,
        )
        if sim is None or sim.quantity <= 0:
            self._store(order)
            return order
        executed = order.executed_quantity + sim.quantity
        updated = replace(
            order,
            status=OrderStatus.FILLED
            if executed >= order.orig_quantity
            else OrderStatus.PARTIALLY_FILLED,
            executed_quantity=executed,
            cumulative_quote=order.cumulative_quote + sim.quantity * sim.price,
            transact_time=self.clock(),
        )
        number = self._book_fill(updated, used_key, sim.quantity, sim.price, sim.fee, rules)
        fill = ExchangeFill(
            price=sim.price,
            quantity=sim.quantity,
            commission=sim.fee,
            commission_asset=QUOTE_ASSET,
            trade_id=f"{order.exchange_order_id}-{number}",
        )
        return replace(updated, fills=(fill,))

    def _store(self, order: OrderResult) -> None:
        pipe = self.client.pipeline(transaction=True)
        self._queue_store(pipe, order)
        pipe.execute()

    def _queue_store(self, pipe: redis.client.Pipeline, order: OrderResult) -> None:
        pipe.hset(self._orders_key(), order.client_order_id, _order_to_json(order))
        if order.is_open:
            pipe.sadd(self._open_key(), order.client_order_id)
        else:
            pipe.srem(self._open_key(), order.client_order_id)

    def _book_fill(
        self,
        order: OrderResult,
        used_key: str,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        rules: SymbolRules,
    ) -> int:
        """Books a fill of ``order`` (as it stands after the fill) all at once: the bar's volume
        it used, its trade number, the order, and the balances it moved; returns the trade
        number."""
        sign = 1 if order.side == "BUY" else -1
        key = rkey("paper", "balances")
        moves = {
            rules.base_asset: sign * quantity,
            rules.quote_asset: _EXACT.subtract(_EXACT.multiply(-sign * quantity, price), fee),
        }

        # Decimal sums under WATCH, not HINCRBYFLOAT: a float loses digits of fees and notionals.
        def book(pipe: redis.client.Pipeline) -> None:
            current = pipe.hmget(key, list(moves))
            pipe.multi()
            pipe.incrbyfloat(used_key, float(quantity))
            pipe.expire(used_key, 86_400)
            pipe.hincrby(rkey("paper", "trade_seq"), order.client_order_id, 1)
            self._queue_store(pipe, order)
            pipe.hset(key, mapping={
                asset: str(_EXACT.add(Decimal(now or "0"), delta))
                for (asset, delta), now in zip(moves.items(), current, strict=True)
            })  # fmt: skip

        _used, _expiry, number, *_ = self.client.transaction(book, key)
        return number
