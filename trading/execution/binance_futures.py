"""Binance USDⓈ-M perpetual futures through python-binance's ``Client``, behind the same
``ExchangeAdapter`` interface as spot, for a futures account.

The order path is spot's (``BinanceAdapter``): the same error mapping, the same client order id
from the correlation id (newClientOrderId), the same look-up-before-resend after an ambiguous
failure. What differs is the endpoints and the answers:

- POST /fapi/v1/order (``futures_create_order``) with ``reduceOnly`` when the request is
  reduce-only, ``newOrderRespType=RESULT``; its answer has ``cumQuote`` and no fills, so the trades
  of an order that executed are read from GET /fapi/v1/userTrades (``futures_account_trades``),
  whose commissions are what the ledger books;
- POST /fapi/v1/order/test, GET and DELETE /fapi/v1/order, GET /fapi/v1/openOrders;
- POST /fapi/v1/leverage (``set_leverage``), GET /fapi/v2/account (``account``: wallet, margin
  and available balances), GET /fapi/v3/balance (``balances``: an asset's available balance is
  its free part, the rest of its wallet balance its locked part), GET /fapi/v3/positionRisk
  (``positions``), GET /fapi/v1/leverageBracket (``leverage_brackets``), GET
  /fapi/v1/exchangeInfo (``exchange_info``, its filters written the way the spot rules parser
  reads them).

The account is taken as Binance's default: single-asset (USDT) cross margin in one-way mode
(positionSide ``BOTH``), which is what the ledger's arithmetic models.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from trading.execution.adapter import (
    Balance,
    ExchangeError,
    ExchangeFill,
    OrderRequest,
    OrderResult,
)
from trading.execution.binance import BinanceAdapter, order_params, parse_order
from trading.ledger.futures import Brackets, parse_brackets

ZERO = Decimal(0)


@dataclass(frozen=True)
class FuturesAccountState:
    """The USDT totals of GET /fapi/v2/account (single-asset mode)."""

    wallet_balance: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    open_order_initial_margin: Decimal
    available_balance: Decimal
    # Per symbol with a setting: the leverage the account trades it at.
    leverages: Mapping[str, int]


@dataclass(frozen=True)
class FuturesPosition:
    """One symbol's position as GET /fapi/v3/positionRisk reports it (one-way mode)."""

    symbol: str
    quantity: Decimal  # signed: negative for a short
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    liquidation_price: Decimal | None  # Binance's "0" when there is none
    initial_margin: Decimal
    maintenance_margin: Decimal


def parse_futures_order(payload: Mapping[str, Any]) -> OrderResult:
    """An ``OrderResult`` from a futures order answer: spot's reading, with the quote executed
    from ``cumQuote`` (spot's ``cummulativeQuoteQty``)."""
    result = parse_order(payload)
    return replace(result, cumulative_quote=Decimal(payload.get("cumQuote", "0")))


def parse_futures_trades(payload: Iterable[Mapping[str, Any]]) -> tuple[ExchangeFill, ...]:
    """The fills in a GET /fapi/v1/userTrades answer. The commission is taken as a cost
    whatever its sign (Binance's own example writes it negative)."""
    return tuple(
        ExchangeFill(
            price=Decimal(trade["price"]),
            quantity=Decimal(trade["qty"]),
            commission=Decimal(trade["commission"]).copy_abs(),
            commission_asset=trade["commissionAsset"],
            trade_id=str(trade["id"]),
        )
        for trade in payload
    )


def futures_order_params(req: OrderRequest) -> dict[str, Any]:
    """The POST /fapi/v1/order parameters: spot's, with RESULT (futures has no FULL answer) and
    ``reduceOnly`` when the request must not open or grow the position."""
    params = order_params(req)
    params["newOrderRespType"] = "RESULT"
    if req.reduce_only:
        params["reduceOnly"] = "true"
    return params


def parse_account(payload: Mapping[str, Any]) -> FuturesAccountState:
    def total(key: str) -> Decimal:
        return Decimal(payload[key])

    return FuturesAccountState(
        wallet_balance=total("totalWalletBalance"),
        unrealized_pnl=total("totalUnrealizedProfit"),
        margin_balance=total("totalMarginBalance"),
        initial_margin=total("totalInitialMargin"),
        maintenance_margin=total("totalMaintMargin"),
        open_order_initial_margin=total("totalOpenOrderInitialMargin"),
        available_balance=total("availableBalance"),
        leverages={
            row["symbol"]: int(row["leverage"])
            for row in payload.get("positions", ())
            if "leverage" in row
        },
    )


def parse_positions(payload: Iterable[Mapping[str, Any]]) -> list[FuturesPosition]:
    """The open positions (a non-zero ``positionAmt``) of a positionRisk answer."""
    positions = []
    for row in payload:
        quantity = Decimal(row["positionAmt"])
        if not quantity:
            continue
        liquidation = Decimal(row.get("liquidationPrice", "0"))
        positions.append(
            FuturesPosition(
                symbol=row["symbol"],
                quantity=quantity,
                entry_price=Decimal(row["entryPrice"]),
                mark_price=Decimal(row["markPrice"]),
                unrealized_pnl=Decimal(row["unRealizedProfit"]),
                liquidation_price=liquidation if liquidation > 0 else None,
                initial_margin=Decimal(row.get("initialMargin", "0")),
                maintenance_margin=Decimal(row.get("maintMargin", "0")),
            )
        )
    return positions


def parse_futures_balances(payload: Iterable[Mapping[str, Any]]) -> list[Balance]:
    """GET /fapi/v3/balance as balances: per asset, free is what is available for new margin,
    locked the rest of the wallet balance (what positions and open orders hold)."""
    balances = []
    for row in payload:
        wallet, available = Decimal(row["balance"]), Decimal(row["availableBalance"])
        if not wallet and not available:
            continue
        free = min(available, wallet)
        balances.append(Balance(asset=row["asset"], free=free, locked=wallet - free))
    return balances


def spot_shaped_rules(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A futures exchangeInfo symbol with its MIN_NOTIONAL filter (``notional``, applied to every
    order) written as spot's NOTIONAL filter, which the symbol rules parser reads."""
    filters = []
    for rule in entry.get("filters", ()):
        if rule.get("filterType") == "MIN_NOTIONAL" and "notional" in rule:
            rule = {"filterType": "NOTIONAL", "minNotional": rule["notional"],
                    "applyMinToMarket": True}  # fmt: skip
        filters.append(rule)
    return {**entry, "filters": filters}


class BinanceFuturesAdapter(BinanceAdapter):
    """``ExchangeAdapter`` for a Binance USDⓈ-M futures account, plus its margin endpoints."""

    _create_order = "futures_create_order"
    _test_order = "futures_create_test_order"
    _get_order = "futures_get_order"
    _order_trades = "futures_account_trades"
    _cancel = "futures_cancel_order"
    _open_orders = "futures_get_open_orders"
    _server_time = "futures_time"

    parse_order = staticmethod(parse_futures_order)
    parse_trades = staticmethod(parse_futures_trades)
    order_params = staticmethod(futures_order_params)

    def ping(self) -> None:
        self._call("futures ping", self._client.futures_ping, changes_orders=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What this process last set per symbol: a leverage is set once, not before every order.
        self._leverage: dict[str, int] = {}

    def place_order(self, req: OrderRequest) -> OrderResult:
        """Places the order (spot's rules for an ambiguous outcome) at the request's leverage,
        set first when it is not what was last set, and, when it executed, reads its trades: a
        futures answer carries totals only."""
        if req.leverage is not None and self._leverage.get(req.symbol) != req.leverage:
            self.set_leverage(req.symbol, req.leverage)
        result = super().place_order(req)
        if result.fills or result.executed_quantity <= 0:
            return result
        try:
            fills = self.order_trades(result.symbol, result.exchange_order_id)
        except ExchangeError as error:
            return self._without_trades(result, str(error))
        traded = sum((fill.quantity for fill in fills), ZERO)
        if traded != result.executed_quantity:
            return self._without_trades(
                result, f"its trades add up to {traded} of the {result.executed_quantity} executed"
            )
        return replace(result, fills=fills)

    def set_leverage(self, symbol: str, leverage: int) -> int:
        """Sets the account's initial leverage in ``symbol`` (POST /fapi/v1/leverage); returns
        the leverage Binance now applies. Binance refuses one above the symbol's brackets
        (-4028), a permanent error."""
        what = f"leverage {leverage}x on {symbol}"
        payload = self._call(
            what,
            self._client.futures_change_leverage,
            changes_orders=False,
            symbol=symbol,
            leverage=leverage,
        )
        try:
            applied = int(payload["leverage"])
        except (KeyError, TypeError, ValueError) as exc:
            raise self._unexpected(what, payload) from exc
        self._leverage[symbol] = applied
        return applied

    def account(self) -> FuturesAccountState:
        payload = self._call("futures account", self._client.futures_account, changes_orders=False)
        try:
            return parse_account(payload)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise self._unexpected("futures account", payload) from exc

    def balances(self) -> list[Balance]:
        payload = self._call(
            "futures balance", self._client.futures_account_balance, changes_orders=False
        )
        try:
            return parse_futures_balances(payload)
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise self._unexpected("futures balance", payload) from exc

    def positions(self, symbol: str | None = None) -> list[FuturesPosition]:
        params = {"symbol": symbol} if symbol else {}
        what = f"positions on {symbol or 'all symbols'}"
        payload = self._call(
            what, self._client.futures_position_information, changes_orders=False, **params
        )
        try:
            return parse_positions(payload)
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise self._unexpected(what, payload) from exc

    def leverage_brackets(self, symbol: str | None = None) -> dict[str, Brackets]:
        """The account's notional and leverage brackets (GET /fapi/v1/leverageBracket)."""
        params = {"symbol": symbol} if symbol else {}
        what = f"leverage brackets of {symbol or 'all symbols'}"
        payload = self._call(
            what, self._client.futures_leverage_bracket, changes_orders=False, **params
        )
        try:
            return parse_brackets(payload)
        except ValueError as exc:
            raise self._unexpected(what, payload) from exc

    def exchange_info(self, symbols: Iterable[str]) -> dict[str, Any]:
        """The futures exchangeInfo, cut to ``symbols`` (all when empty): GET
        /fapi/v1/exchangeInfo takes no symbol filter."""
        wanted = {symbols} if isinstance(symbols, str) else set(symbols)
        payload = self._call(
            "futures exchange info", self._client.futures_exchange_info, changes_orders=False
        )
        try:
            entries = [
                spot_shaped_rules(entry)
                for entry in payload["symbols"]
                if not wanted or entry["symbol"] in wanted
            ]
        except (KeyError, TypeError) as exc:
            raise self._unexpected("futures exchange info", payload) from exc
        return {**payload, "symbols": entries}

    @staticmethod
    def _unexpected(what: str, payload: object) -> ExchangeError:
        return ExchangeError(
            f"Binance {what}: unexpected answer {str(payload)[:300]}", retryable=False
        )
