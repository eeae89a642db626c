"""The one interface every exchange implements, and the values that cross it.

An adapter takes an ``OrderRequest`` and answers with an ``OrderResult``; both are frozen and hold
``Decimal`` amounts, never floats. Every failure comes out as one ``ExchangeError`` that says
whether a retry can help (``retryable``) and whether the exchange may have acted on the request
anyway (``ambiguous``): after an ambiguous error the order must be looked up before anything is
sent again.

Client order ids are how a redelivered task avoids a second order: ``client_order_id_for`` turns
the platform's correlation id into the same exchange id every time, so the exchange (or a lookup
by that id) recognises the order it already has.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from trading.primitives import FINAL_ORDER_STATUSES, OPEN_ORDER_STATUSES, OrderStatus

T = TypeVar("T")

Side = Literal["BUY", "SELL"]
OrderType = Literal["MARKET", "LIMIT"]
TimeInForce = Literal["GTC", "IOC", "FOK"]

SIDES: frozenset[str] = frozenset({"BUY", "SELL"})
ORDER_TYPES: frozenset[str] = frozenset({"MARKET", "LIMIT"})
TIMES_IN_FORCE: frozenset[str] = frozenset({"GTC", "IOC", "FOK"})

# Binance's rule for newClientOrderId; the strictest of the exchanges we target.
CLIENT_ORDER_ID_RE = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
CLIENT_ORDER_ID_PREFIX = "qt-"
# 24 hex digits (96 bits) of the correlation id's hash, then "-<attempt>", fit in 36 characters.
_DIGEST_LENGTH = 24
MAX_ATTEMPT = 10**8 - 1
# Binance's "new order rejected": a duplicate client order id, or a balance that cannot pay.
NEW_ORDER_REJECTED = -2010


# One enum for the exchanges and the database; re-exported for the adapters.
OPEN_STATUSES = OPEN_ORDER_STATUSES
FINAL_STATUSES = FINAL_ORDER_STATUSES


def client_order_id_for(correlation_id: str, attempt: int = 0) -> str:
    """Returns the exchange client order id for a correlation id and attempt number.

    The same arguments always give the same id, so a redelivered task sends the id the first
    delivery sent. A new ``attempt`` gives a new id: use it only for a deliberate new order after
    the previous one is known to be final. The id matches ``CLIENT_ORDER_ID_RE`` for any non-empty
    correlation id; an empty one is refused, because every such order would share one id.
    """
    if not correlation_id:
        raise ValueError("correlation_id must not be empty")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt must be an int from 0 to {MAX_ATTEMPT}, got {attempt!r}")
    digest = hashlib.sha256(correlation_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{CLIENT_ORDER_ID_PREFIX}{digest[:_DIGEST_LENGTH]}-{attempt}"


def _require_decimal(name: str, value: object, *, positive: bool) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{name} must be a finite Decimal, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


@dataclass(frozen=True, kw_only=True)
class OrderRequest:
    """An order to send. Construction fails with ``ValueError`` on anything an exchange would
    reject for its shape alone (unknown side or type, non-positive amounts, a LIMIT without a
    price, a MARKET with one, a malformed client order id). Exchange filters (tick and lot sizes,
    minimum notional) are not checked here."""

    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    client_order_id: str
    time_in_force: TimeInForce = "GTC"
    # Futures only: the order may shrink the position, never open or grow it (Binance's
    # reduceOnly). A spot venue ignores it: a spot sell cannot exceed what is held anyway.
    reduce_only: bool = False
    # Futures only: the symbol's leverage the order is placed at; the venue sets it first when
    # it differs from what it last set. None leaves the venue's setting alone.
    leverage: int | None = None

    def __post_init__(self) -> None:
        # Not [A-Z0-9]+: Binance lists symbols with non-ASCII letters.
        if not self.symbol or any(c.isspace() for c in self.symbol):
            raise ValueError(f"symbol must be a non-empty name without spaces, got {self.symbol!r}")
        if self.side not in SIDES:
            raise ValueError(f"side must be BUY or SELL, got {self.side!r}")
        if self.order_type not in ORDER_TYPES:
            raise ValueError(f"order_type must be MARKET or LIMIT, got {self.order_type!r}")
        if self.time_in_force not in TIMES_IN_FORCE:
            raise ValueError(f"time_in_force must be GTC, IOC or FOK, got {self.time_in_force!r}")
        _require_decimal("quantity", self.quantity, positive=True)
        if self.order_type == "LIMIT":
            if self.price is None:
                raise ValueError("a LIMIT order needs a price")
            _require_decimal("price", self.price, positive=True)
        elif self.price is not None:
            raise ValueError("a MARKET order takes no price")
        if self.leverage is not None and (
            isinstance(self.leverage, bool)
            or not isinstance(self.leverage, int)
            or self.leverage < 1
        ):
            raise ValueError(f"leverage must be an int of at least 1, got {self.leverage!r}")
        if not CLIENT_ORDER_ID_RE.match(self.client_order_id):
            raise ValueError(
                f"client_order_id must match {CLIENT_ORDER_ID_RE.pattern}, "
                f"got {self.client_order_id!r}"
            )


@dataclass(frozen=True)
class ExchangeFill:
    """One trade that (partly) filled an order. ``commission`` is in ``commission_asset``."""

    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str
    trade_id: str


@dataclass(frozen=True)
class OrderResult:
    """The exchange's view of one order at one moment.

    ``client_order_id`` is always the id the platform chose for the order (for a cancel it is the
    cancelled order's id, not the id of the cancel request). ``fills`` holds the trades reported
    with this answer: order placement reports them, and so does a query when the adapter can look
    the order's trades up (Binance's: GET /api/v3/myTrades); otherwise an answer reports totals
    only, and ``fills_error`` says why a query's trades are missing when the adapter tried.
    ``transact_time`` is when the exchange placed or last changed the order, in UTC, when known.
    """

    client_order_id: str
    exchange_order_id: str
    symbol: str
    side: str
    status: OrderStatus
    orig_quantity: Decimal
    executed_quantity: Decimal
    cumulative_quote: Decimal
    fills: tuple[ExchangeFill, ...]
    transact_time: datetime | None
    fills_error: str | None = None

    @classmethod
    def accepted(cls, request: OrderRequest, exchange_order_id: str, at: datetime) -> OrderResult:
        """An order just placed: NEW, nothing executed yet."""
        return cls(
            client_order_id=request.client_order_id,
            exchange_order_id=exchange_order_id,
            symbol=request.symbol,
            side=request.side,
            status=OrderStatus.NEW,
            orig_quantity=request.quantity,
            executed_quantity=Decimal(0),
            cumulative_quote=Decimal(0),
            fills=(),
            transact_time=at,
        )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def average_price(self) -> Decimal | None:
        """Quote spent or received per unit filled; None before anything fills."""
        if self.executed_quantity <= 0:
            return None
        return self.cumulative_quote / self.executed_quantity


@dataclass(frozen=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


class ExchangeError(Exception):
    """The exchange refused a request, or its outcome could not be learnt.

    - ``retryable``: sending the same request again later can succeed (rate limits, timeouts,
      clock drift, the exchange's own errors). ``retry_after`` is the wait in seconds the exchange
      asked for, when it gave one.
    - ``ambiguous``: the exchange may have acted on the request even though it raised (a timeout or
      a 5xx on an order). Never resend such an order before looking it up by its client order id.
    - ``code`` is the exchange's error code (None when there was no answer), ``http_status`` the
      HTTP status (None without a response).
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        retryable: bool,
        http_status: int | None = None,
        ambiguous: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable
        self.http_status = http_status
        self.ambiguous = ambiguous
        self.retry_after = retry_after

    @property
    def insufficient_balance(self) -> bool:
        """Binance's -2010 for an order the account's free balance cannot pay for: permanent
        for that order, whatever its retry flag says."""
        return self.code == NEW_ORDER_REJECTED and "insufficient balance" in self.message.lower()

    def __str__(self) -> str:
        parts = [f"code={self.code}"] if self.code is not None else []
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        parts.append("retryable" if self.retryable else "permanent")
        if self.ambiguous:
            parts.append("ambiguous")
        return f"{self.message} ({', '.join(parts)})"


def rules_of(rules: Mapping[str, T], symbol: str) -> T:
    """The symbol's rules, or the refusal Binance gives an order in a symbol it does not list
    (-1121 "Invalid symbol"), as the paper exchanges give it."""
    try:
        return rules[symbol]
    except KeyError:
        raise ExchangeError(
            f"Invalid symbol {symbol}", code=-1121, retryable=False, http_status=400
        ) from None


@runtime_checkable
class ExchangeAdapter(Protocol):
    """What the execution service needs from an exchange. Every method raises ``ExchangeError``
    and nothing else for a failure of the exchange or the network."""

    name: str

    def ping(self) -> None:
        """Returns when the exchange answers."""
        ...

    def place_order(self, req: OrderRequest) -> OrderResult:
        """Places the order. If the result is unknown, raises with ``ambiguous=True``."""
        ...

    def validate_order(self, req: OrderRequest) -> dict[str, Any]:
        """Asks the exchange whether it would accept the order, without placing it."""
        ...

    def query_order(self, symbol: str, client_order_id: str) -> OrderResult: ...

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderResult: ...

    def open_orders(self, symbol: str | None = None) -> list[OrderResult]: ...

    def balances(self) -> list[Balance]: ...

    def exchange_info(self, symbols: list[str]) -> dict[str, Any]:
        """The exchange's raw symbol rules for ``symbols``."""
        ...


@runtime_checkable
class FuturesExchange(Protocol):
    """What a futures venue adds: the per-symbol leverage, the margin account, the positions and
    the notional brackets it trades by. Values are the adapter's own (``binance_futures``)."""

    def set_leverage(self, symbol: str, leverage: int) -> int: ...

    def account(self) -> Any: ...

    def positions(self, symbol: str | None = None) -> list[Any]: ...

    def leverage_brackets(self, symbol: str | None = None) -> dict[str, Any]: ...
