"""Binance spot through python-binance's ``Client``, behind the ``ExchangeAdapter`` interface.

Errors. Every python-binance and requests failure becomes one ``ExchangeError``:
- retryable: -1003 and HTTP 418/429 (request weight, IP ban; ``retry_after`` carries the
  Retry-After header), -1015 (order rate), -1001/-1008 (Binance busy or disconnected), -1021
  (timestamp outside recvWindow; the clock offset is re-synced before raising, so the retry can
  pass), -1006/-1007 and any 5xx (execution status unknown), timeouts and connection errors;
- permanent: everything else, in particular -1013 (filter failure), -1100/-1102 (bad parameter),
  -1121 (invalid symbol), -2010 (new order rejected; "Account has insufficient balance for
  requested action." is ``ExchangeError.insufficient_balance``, which the platform records as
  INSUFFICIENT_BALANCE), -2011 (cancel rejected), -2013 (order does not exist) and any other 4xx.
On a request that creates or cancels an order, the "status unknown" cases (-1006, -1007, 5xx,
timeouts, connection errors) are also ``ambiguous``: Binance may have acted on it.

Placing an order after an ambiguous failure. ``place_order`` never resends blindly. It waits
``lookup_delay`` seconds, then looks the order up by its client order id (origClientOrderId):
- found: that is the order, returned as if the first answer had arrived, with the trades that
  ``query_order`` looks up (GET /api/v3/myTrades: a query has no fills or commissions);
- -2013 "Order does not exist": Binance never accepted it, so it is sent once more with the same
  client order id; if that answer is ambiguous too, the error is raised for the caller to
  reconcile; "Duplicate order sent" means the first request landed after all, and it is looked up;
- the lookup itself fails: an ambiguous ``ExchangeError`` is raised; nothing is resent.
Why the resend is safe only after -2013: Binance rejects a newClientOrderId only while an order
with that id is *open*, so once an order has filled, the same id would be accepted again and trade
twice. The lookup is what rules that out; the delay lets a request still in flight inside Binance
reach the matching engine before the lookup is made. A caller that gets an ambiguous error must not
call ``place_order`` again for that client order id before ``query_order`` or ``reconcile`` says
the order does not exist.

One ``BinanceAdapter`` per process: it holds a requests session, which must not cross a fork.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException, BinanceOrderException, BinanceRequestException

from trading.execution.adapter import (
    Balance,
    ExchangeError,
    ExchangeFill,
    OrderRequest,
    OrderResult,
    OrderStatus,
)

logger = logging.getLogger(__name__)

Mode = Literal["testnet", "demo", "live"]
MODES: tuple[str, ...] = ("testnet", "demo", "live")

ORDER_DOES_NOT_EXIST = -2013
NEW_ORDER_REJECTED = -2010
INVALID_TIMESTAMP = -1021

# errors.md: -1001 disconnected, -1003 request weight, -1006 unexpected response, -1007 backend
# timeout, -1008 server busy, -1015 too many new orders, -1021 timestamp outside recvWindow.
_RETRYABLE_CODES = frozenset({-1001, -1003, -1006, -1007, -1008, -1015, INVALID_TIMESTAMP})
# "Execution status unknown" in errors.md; rest-api.md says the same of every 5xx.
_UNKNOWN_OUTCOME_CODES = frozenset({-1006, -1007})
# 418 is an IP ban and 429 a rate limit; both lift after Retry-After seconds.
_RETRYABLE_STATUSES = frozenset({408, 418, 429})

_STATUSES = {
    "NEW": OrderStatus.NEW,
    # An order-list leg waiting for its trigger: open, not yet working.
    "PENDING_NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    # Expired by self-trade prevention.
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}

# rest-api.md: numbers must match ^([0-9]{1,20})(\.[0-9]{1,20})?$
_MAX_DIGITS = 20


@dataclass(frozen=True)
class BinanceConfig:
    """How to reach Binance. The key and secret never appear in ``repr`` or in error messages."""

    mode: Mode
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    # Milliseconds a signed request stays valid; Binance's default is 5000, its maximum 60000.
    recv_window: int = 5000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is not valid: expected testnet, demo or live")
        if not self.api_key or not self.api_secret:
            raise ValueError("api_key and api_secret must not be empty")
        if isinstance(self.recv_window, bool) or not 1 <= self.recv_window <= 60000:
            raise ValueError(f"recv_window={self.recv_window!r} is not valid: expected 1 to 60000")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BinanceConfig:
        """Reads BINANCE_MODE (testnet, demo or live), BINANCE_API_KEY, BINANCE_API_SECRET and the
        optional BINANCE_RECV_WINDOW (milliseconds). Raises ``ValueError`` with a one-line message
        naming the first missing or bad variable."""
        env = os.environ if environ is None else environ

        def read(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        mode = read("BINANCE_MODE")
        if mode is None:
            raise ValueError("BINANCE_MODE is required but not set (testnet, demo or live)")
        if mode.lower() not in MODES:
            raise ValueError(f"BINANCE_MODE={mode!r} is not valid: expected testnet, demo or live")
        api_key = read("BINANCE_API_KEY")
        if api_key is None:
            raise ValueError("BINANCE_API_KEY is required but not set")
        api_secret = read("BINANCE_API_SECRET")
        if api_secret is None:
            raise ValueError("BINANCE_API_SECRET is required but not set")
        raw_window = read("BINANCE_RECV_WINDOW")
        recv_window = 5000
        if raw_window is not None:
            if not raw_window.isdigit() or not 1 <= int(raw_window) <= 60000:
                raise ValueError(
                    f"BINANCE_RECV_WINDOW={raw_window!r} is not valid: expected 1 to 60000"
                )
            recv_window = int(raw_window)
        return cls(mode.lower(), api_key, api_secret, recv_window)  # type: ignore[arg-type]


def build_client(config: BinanceConfig) -> Client:
    """A python-binance ``Client`` for the configured mode, without its start-up ping."""
    client = Client(
        config.api_key,
        config.api_secret,
        testnet=config.mode == "testnet",
        demo=config.mode == "demo",
        ping=False,
    )
    # python-binance adds its class-wide REQUEST_RECVWINDOW (10000) to every signed request,
    # overwriting any recvWindow passed as a parameter; the instance attribute is the only knob.
    client.REQUEST_RECVWINDOW = config.recv_window
    return client


def format_decimal(value: Decimal) -> str:
    """Writes a Decimal the way Binance accepts numbers: plain digits, no exponent, no trailing
    zeros, at most 20 digits either side of the point. Raises ``ValueError`` otherwise.

    ``str(Decimal)`` is not enough: it gives ``1E-8`` and ``1E+1``, which Binance rejects (-1100).
    """
    if not value.is_finite() or value < 0:
        raise ValueError(f"cannot send {value!r} to Binance")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    whole, _, fraction = text.partition(".")
    if len(whole) > _MAX_DIGITS or len(fraction) > _MAX_DIGITS:
        raise ValueError(f"{value} has more than {_MAX_DIGITS} digits on one side of the point")
    return text


def _ms_to_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def parse_order(payload: Mapping[str, Any]) -> OrderResult:
    """An ``OrderResult`` from Binance's answer to placing, querying or cancelling an order.

    A cancel answer's ``clientOrderId`` names the cancel request; the order's own id is
    ``origClientOrderId``, which is the one returned. An ACK-only answer has no status or
    quantities: it comes out as UNKNOWN with zero quantities, to be looked up.
    """
    fills = tuple(
        ExchangeFill(
            price=Decimal(fill["price"]),
            quantity=Decimal(fill["qty"]),
            commission=Decimal(fill["commission"]),
            commission_asset=fill["commissionAsset"],
            trade_id=str(fill["tradeId"]),
        )
        for fill in payload.get("fills") or ()
    )
    when = payload.get("transactTime") or payload.get("updateTime") or payload.get("time")
    return OrderResult(
        client_order_id=payload.get("origClientOrderId") or payload["clientOrderId"],
        exchange_order_id=str(payload["orderId"]),
        symbol=payload["symbol"],
        side=payload.get("side", ""),
        status=_STATUSES.get(payload.get("status", ""), OrderStatus.UNKNOWN),
        orig_quantity=Decimal(payload.get("origQty", "0")),
        executed_quantity=Decimal(payload.get("executedQty", "0")),
        cumulative_quote=Decimal(payload.get("cummulativeQuoteQty", "0")),
        fills=fills,
        transact_time=_ms_to_datetime(when),
    )


def parse_trades(payload: Iterable[Mapping[str, Any]]) -> tuple[ExchangeFill, ...]:
    """The fills in Binance's answer to GET /api/v3/myTrades. A trade's ``id`` is the
    ``tradeId`` of the same trade in an order's FULL answer, so a trade learnt both ways is
    recorded once."""
    return tuple(
        ExchangeFill(
            price=Decimal(trade["price"]),
            quantity=Decimal(trade["qty"]),
            commission=Decimal(trade["commission"]),
            commission_asset=trade["commissionAsset"],
            trade_id=str(trade["id"]),
        )
        for trade in payload
    )


def parse_balances(account: Mapping[str, Any]) -> list[Balance]:
    return [
        Balance(asset=row["asset"], free=Decimal(row["free"]), locked=Decimal(row["locked"]))
        for row in account["balances"]
    ]


def _retry_after(response: requests.Response | None) -> float | None:
    header = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


def error_from_api_exception(
    exc: BinanceAPIException, *, what: str = "request", changes_orders: bool
) -> ExchangeError:
    """Maps a Binance error answer to an ``ExchangeError`` (see the module docstring).
    ``changes_orders`` says whether the request could have created or cancelled an order."""
    # python-binance sets code 0 when the body was not Binance's JSON (say, a proxy's HTML page).
    code = exc.code or None
    status = exc.status_code
    unknown_outcome = code in _UNKNOWN_OUTCOME_CODES or status >= 500
    return ExchangeError(
        f"Binance {what}: {exc.message}",
        code=code,
        http_status=status,
        retryable=unknown_outcome or code in _RETRYABLE_CODES or status in _RETRYABLE_STATUSES,
        ambiguous=unknown_outcome and changes_orders,
        retry_after=_retry_after(exc.response),
    )


class BinanceAdapter:
    """``ExchangeAdapter`` for Binance spot. ``client`` and ``sleep`` are for tests; by default a
    python-binance ``Client`` is built from ``config``."""

    name = "binance"
    # The python-binance methods behind each call: the futures adapter names its own.
    _create_order = "create_order"
    _test_order = "create_test_order"
    _get_order = "get_order"
    _order_trades = "get_my_trades"
    _cancel = "cancel_order"
    _open_orders = "get_open_orders"
    _server_time = "get_server_time"

    def __init__(
        self,
        config: BinanceConfig,
        *,
        client: Client | None = None,
        lookup_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.mode = config.mode
        self._client = client if client is not None else build_client(config)
        self._lookup_delay = lookup_delay
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={self.mode!r})"

    def _method(self, name: str) -> Callable[..., Any]:
        return getattr(self._client, name)

    @staticmethod
    def parse_order(payload: Mapping[str, Any]) -> OrderResult:
        return parse_order(payload)

    @staticmethod
    def parse_trades(payload: Iterable[Mapping[str, Any]]) -> tuple[ExchangeFill, ...]:
        return parse_trades(payload)

    @staticmethod
    def order_params(req: OrderRequest) -> dict[str, Any]:
        return order_params(req)

    # -- calls --------------------------------------------------------------------------------

    def _call(
        self, what: str, method: Callable[..., Any], *, changes_orders: bool, **params: Any
    ) -> Any:
        try:
            return method(**params)
        except BinanceAPIException as exc:
            error = error_from_api_exception(exc, what=what, changes_orders=changes_orders)
            if error.code == INVALID_TIMESTAMP:
                self.sync_clock()
            raise error from exc
        except BinanceOrderException as exc:
            raise ExchangeError(
                f"Binance {what}: {exc.message}", code=exc.code, retryable=False
            ) from exc
        except BinanceRequestException as exc:
            # A 2xx answer that is not JSON: it arrived, so it may have been acted on.
            raise ExchangeError(
                f"Binance {what}: unreadable answer ({exc.message[:200]})",
                retryable=True,
                ambiguous=changes_orders,
            ) from exc
        except requests.ConnectTimeout as exc:
            # No connection was made, so nothing was sent.
            raise ExchangeError(f"Binance {what}: connect timeout", retryable=True) from exc
        except requests.RequestException as exc:
            # Read timeouts, resets, TLS errors: the request may have reached Binance. Connection
            # errors are counted in too, as requests does not say reliably whether anything left.
            raise ExchangeError(
                f"Binance {what}: {type(exc).__name__}: {exc}",
                retryable=True,
                ambiguous=changes_orders,
            ) from exc

    def sync_clock(self) -> None:
        """Aligns signed requests' timestamps with Binance's clock (the cure for -1021). Best
        effort: a failure is logged and the previous offset kept."""
        try:
            server_ms = getattr(self._client, self._server_time)()["serverTime"]
        except (BinanceAPIException, BinanceRequestException, requests.RequestException, KeyError):
            logger.warning("binance clock sync failed", exc_info=True)
            return
        self._client.timestamp_offset = int(server_ms) - int(time.time() * 1000)
        logger.info(
            "binance clock offset set",
            extra={"exchange": self.name, "offset_ms": self._client.timestamp_offset},
        )

    def _parse_order(self, what: str, payload: Any, *, changes_orders: bool) -> OrderResult:
        try:
            return self.parse_order(payload)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise ExchangeError(
                f"Binance {what}: unexpected answer {str(payload)[:300]}",
                retryable=False,
                ambiguous=changes_orders,
            ) from exc

    # -- ExchangeAdapter ----------------------------------------------------------------------

    def ping(self) -> None:
        self._call("ping", self._client.ping, changes_orders=False)

    def place_order(self, req: OrderRequest) -> OrderResult:
        """Places the order and returns Binance's FULL answer, fills included. After an
        ambiguous failure, looks the order up and resends at most once (module docstring)."""
        params = self.order_params(req)
        what = f"new order {req.client_order_id} on {req.symbol}"
        try:
            payload = self._call(what, self._method(self._create_order), changes_orders=True,
                                 **params)  # fmt: skip
        except ExchangeError as error:
            if not error.ambiguous:
                raise
            return self._recover(req, params, error)
        return self._parse_order(what, payload, changes_orders=True)

    def _recover(
        self, req: OrderRequest, params: dict[str, Any], first: ExchangeError
    ) -> OrderResult:
        log = {"client_order_id": req.client_order_id, "symbol": req.symbol}
        logger.warning("binance new order outcome unknown, looking it up: %s", first, extra=log)
        if self._lookup_delay > 0:
            self._sleep(self._lookup_delay)
        try:
            return self.query_order(req.symbol, req.client_order_id)
        except ExchangeError as lookup:
            if lookup.code != ORDER_DOES_NOT_EXIST:
                raise ExchangeError(
                    f"{first.message}; looking the order up failed too: {lookup.message}",
                    code=first.code,
                    http_status=first.http_status,
                    retryable=True,
                    ambiguous=True,
                    retry_after=lookup.retry_after,
                ) from lookup
        logger.warning("binance has no such order, sending it again", extra=log)
        what = f"new order {req.client_order_id} on {req.symbol} (resent)"
        try:
            payload = self._call(what, self._method(self._create_order), changes_orders=True,
                                 **params)  # fmt: skip
        except ExchangeError as error:
            if error.code == NEW_ORDER_REJECTED and "Duplicate order" in error.message:
                return self.query_order(req.symbol, req.client_order_id)
            raise
        return self._parse_order(what, payload, changes_orders=True)

    def validate_order(
        self, req: OrderRequest, *, compute_commission_rates: bool = False
    ) -> dict[str, Any]:
        """Sends the order to order/test, which checks it like a real one without placing it.
        Returns Binance's answer: ``{}``, or the commission rates when asked for them."""
        params = self.order_params(req)
        if compute_commission_rates:
            params["computeCommissionRates"] = "true"
        what = f"test order {req.client_order_id} on {req.symbol}"
        return self._call(what, self._method(self._test_order), changes_orders=False, **params)

    def query_order(self, symbol: str, client_order_id: str) -> OrderResult:
        """Binance's current view of the order, with its trades once any quantity executed.
        Raises with code -2013 when it has none.

        GET /api/v3/order reports totals only, without the commissions, so the trades come from
        GET /api/v3/myTrades by the order's id. When they cannot be read, or do not add up to the
        executed quantity (the trade list can lag the order), the answer has no fills and
        ``fills_error`` says why: the caller falls back on the totals."""
        what = f"query order {client_order_id} on {symbol}"
        payload = self._call(
            what,
            self._method(self._get_order),
            changes_orders=False,
            symbol=symbol,
            origClientOrderId=client_order_id,
        )
        result = self._parse_order(what, payload, changes_orders=False)
        if result.executed_quantity <= 0:
            return result
        try:
            fills = self.order_trades(symbol, result.exchange_order_id)
        except ExchangeError as error:
            return self._without_trades(result, str(error))
        traded = sum((fill.quantity for fill in fills), Decimal(0))
        if traded != result.executed_quantity:
            return self._without_trades(
                result, f"its trades add up to {traded} of the {result.executed_quantity} executed"
            )
        return replace(result, fills=fills)

    def _without_trades(self, result: OrderResult, why: str) -> OrderResult:
        logger.warning(
            "binance order trades not read, its totals are all there is: %s",
            why,
            extra={"client_order_id": result.client_order_id, "symbol": result.symbol},
        )
        return replace(result, fills=(), fills_error=why)

    def order_trades(self, symbol: str, exchange_order_id: str) -> tuple[ExchangeFill, ...]:
        """The order's trades with their commissions (GET /api/v3/myTrades, weight 5 with an
        order id), oldest first."""
        what = f"trades of order {exchange_order_id} on {symbol}"
        payload = self._call(
            what,
            self._method(self._order_trades),
            changes_orders=False,
            symbol=symbol,
            orderId=exchange_order_id,
            limit=1000,
        )
        try:
            return self.parse_trades(payload)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise ExchangeError(
                f"Binance {what}: unexpected answer {str(payload)[:300]}", retryable=False
            ) from exc

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult:
        """Cancels the order; raises with code -2011 when it is no longer open (or never was)."""
        what = f"cancel order {client_order_id} on {symbol}"
        payload = self._call(
            what,
            self._method(self._cancel),
            changes_orders=True,
            symbol=symbol,
            origClientOrderId=client_order_id,
        )
        return self._parse_order(what, payload, changes_orders=True)

    def open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        what = f"open orders on {symbol or 'all symbols'}"
        params = {"symbol": symbol} if symbol else {}
        payload = self._call(what, self._method(self._open_orders), changes_orders=False, **params)
        return [self._parse_order(what, row, changes_orders=False) for row in payload]

    def balances(self) -> list[Balance]:
        """The account's balances, leaving out assets with nothing free or locked."""
        payload = self._call(
            "account", self._client.get_account, changes_orders=False, omitZeroBalances="true"
        )
        try:
            return parse_balances(payload)
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise ExchangeError(
                f"Binance account: unexpected answer {str(payload)[:300]}", retryable=False
            ) from exc

    def exchange_info(self, symbols: Iterable[str]) -> dict[str, Any]:
        """Binance's raw exchangeInfo for ``symbols`` (all symbols when empty)."""
        wanted = [symbols] if isinstance(symbols, str) else list(symbols)
        if not wanted:
            return self._call("exchange info", self._client.get_exchange_info, changes_orders=False)
        # Client.get_exchange_info() takes no parameters; its own _get does, and the full
        # answer is several megabytes, so ask for just these symbols.
        return self._call(
            f"exchange info for {','.join(wanted)}",
            self._client._get,
            changes_orders=False,
            path="exchangeInfo",
            data={"symbols": json.dumps(wanted, separators=(",", ":"))},
        )

    # -- reconciliation ---------------------------------------------------------------------

    def reconcile(self, open_client_order_ids: Mapping[str, str]) -> list[OrderResult]:
        """Binance's current view of the orders the platform believes open, plus every open order
        on Binance the platform does not know.

        ``open_client_order_ids`` maps client order id to symbol (Binance looks orders up per
        symbol). The answer has one result per known order Binance has, whatever its status now,
        then the unknown open orders. A known id missing from the answer is an order Binance says
        does not exist (-2013): it was never placed. Any other failure raises; nothing partial is
        returned.
        """
        on_exchange = {order.client_order_id: order for order in self.open_orders()}
        results: list[OrderResult] = []
        for client_order_id, symbol in open_client_order_ids.items():
            still_open = on_exchange.pop(client_order_id, None)
            if still_open is not None:
                results.append(still_open)
                continue
            try:
                results.append(self.query_order(symbol, client_order_id))
            except ExchangeError as error:
                if error.code != ORDER_DOES_NOT_EXIST:
                    raise
                logger.warning(
                    "binance has no order the platform thinks open",
                    extra={"client_order_id": client_order_id, "symbol": symbol},
                )
        results.extend(on_exchange.values())
        return results


def order_params(req: OrderRequest) -> dict[str, Any]:
    """The POST /api/v3/order parameters for a request; FULL so the answer carries the fills."""
    params: dict[str, Any] = {
        "symbol": req.symbol,
        "side": req.side,
        "type": req.order_type,
        "quantity": format_decimal(req.quantity),
        "newClientOrderId": req.client_order_id,
        "newOrderRespType": "FULL",
    }
    if req.order_type == "LIMIT":
        assert req.price is not None  # OrderRequest guarantees it
        params["price"] = format_decimal(req.price)
        # Only LIMIT takes timeInForce; on a MARKET order Binance rejects it (-1106).
        params["timeInForce"] = req.time_in_force
    return params
