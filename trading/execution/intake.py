"""The one way a signal comes in, whoever sends it: the ai service, analytics' trims, the API,
the system checks.

``submit_signal`` validates the signal, saves it with its ``signal.generated`` event (stamped
with the producer's service) in one transaction through the outbox, and hands it to exec-risk:
``process_signal`` is sent by the outbox relay once the event is in the log. So a signal that
was saved always reaches exec-risk, also when Redis was down as it was saved (it waits in the
outbox), and processing it more than once places one order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction

from trading import bus
from trading.events import outbox
from trading.events.envelope import EVENT_SERVICES, new_event
from trading.models import Account, Side, Signal

PROCESS_SIGNAL = bus.PROCESS_SIGNAL
MAX_LEVERAGE = 125


class InvalidSignal(ValueError):
    """The signal cannot be traded as given; the message says why."""


@dataclass(frozen=True)
class SignalRequest:
    """What a producer asks to trade: exactly one of ``notional`` (quote to spend) or
    ``quantity`` (base to trade)."""

    symbol: str
    side: str
    confidence: Decimal
    notional: Decimal | None = None
    quantity: Decimal | None = None
    leverage: int = 1
    stop_loss_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    # Sell (or buy back) what the position holds, whatever it is when the order is sized.
    close_position: bool = False
    # Futures: an order that may only shrink the position (denied REDUCE_ONLY otherwise).
    reduce_only: bool = False

    def problems(self) -> list[str]:
        """What is wrong with it (empty when nothing is)."""
        found = []
        if not self.symbol or not self.symbol.isalnum() or self.symbol != self.symbol.upper():
            found.append(f"symbol must be upper-case letters and digits, got {self.symbol!r}")
        if self.side not in Side.values:
            found.append(f"side must be BUY or SELL, got {self.side!r}")
        if not isinstance(self.confidence, Decimal) or not 0 <= self.confidence <= 1:
            found.append(f"confidence must be a Decimal from 0 to 1, got {self.confidence!r}")
        if self.close_position:
            if self.notional is not None or self.quantity is not None:
                found.append("a signal that closes a position takes no notional or quantity")
        elif (self.notional is None) == (self.quantity is None):
            found.append("give exactly one of notional or quantity")
        for name in ("notional", "quantity", "stop_loss_price", "take_profit_price"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Decimal) or not value > 0):
                found.append(f"{name} must be a positive Decimal, got {value!r}")
        if (
            isinstance(self.leverage, bool)
            or not isinstance(self.leverage, int)
            or not (1 <= self.leverage <= MAX_LEVERAGE)
        ):
            found.append(f"leverage must be an integer from 1 to {MAX_LEVERAGE}")
        return found


def submit_signal(
    account: Account,
    request: SignalRequest,
    *,
    producer: str,
    source: str,
    hand_off: bool = True,
    **details: Any,
) -> Signal:
    """Validates the signal (raises ``InvalidSignal``), saves it and its ``signal.generated``
    event, stamped ``service=producer``, in one transaction (the caller's, when it has one), and
    hands it to exec-risk once the event is in the log. ``source`` is what the signal records as
    its origin (``ai``, ``analytics``, ``api``, ``selftest``); ``details`` are the model's
    (``model_version``, ``probability_up``, ``features``).

    ``hand_off=False`` saves the signal and its event only, for a caller that decides the
    signal itself, in its own process."""
    if producer not in EVENT_SERVICES:
        raise InvalidSignal(f"unknown producer {producer!r}")
    problems = request.problems()
    if problems:
        raise InvalidSignal("; ".join(problems))
    with transaction.atomic():
        signal = Signal.objects.create(
            account=account,
            symbol=request.symbol,
            side=request.side,
            confidence=request.confidence,
            notional=request.notional,
            quantity=request.quantity,
            leverage=request.leverage,
            stop_loss_price=request.stop_loss_price,
            take_profit_price=request.take_profit_price,
            close_position=request.close_position,
            reduce_only=request.reduce_only,
            source=source,
            **details,
        )
        event = new_event(
            "signal.generated",
            signal_payload(signal),
            service=producer,
            correlation_id=str(signal.correlation_id),
        )
        outbox.record([event], then=handoff_for(signal) if hand_off else None)
    return signal


def handoff_for(signal: Signal) -> outbox.Handoff:
    """exec-risk's processing of the signal, under a task id of its own: however often the
    relay sends it, waiting for ``AsyncResult(handoff.task_id)`` waits for its outcome."""
    return outbox.Handoff(PROCESS_SIGNAL, (str(signal.id),), task_id=f"process-signal-{signal.id}")


def signal_payload(signal: Signal) -> dict:
    return {
        "signal_id": str(signal.id),
        "account": signal.account.name,
        "symbol": signal.symbol,
        "side": signal.side,
        "confidence": str(signal.confidence),
        "notional": None if signal.notional is None else str(signal.notional),
        "quantity": None if signal.quantity is None else str(signal.quantity),
        "leverage": signal.leverage,
        "close_position": signal.close_position,
        "reduce_only": signal.reduce_only,
        "source": signal.source,
        "model_version": signal.model_version,
    }
