"""What a strategy is: it sees closed bars only and returns signals.

A strategy is a value: its ``kind``, its parameters and the ``confidence`` it states. Each closed
bar of a symbol, it is shown ``on_bar(window)``: that symbol's bars up to and including the bar
that just closed, the last ``warmup`` of them, oldest first, and it returns the signals to send
(usually none). It keeps no state between calls, so the same window always gives the same
signals, live or in a backtest, and no bar after the window can reach it.

``on_bar`` is the contract, and what live trading calls. A strategy may also offer
``on_series(bars, start)``: for one symbol's consecutive bars, the signals ``on_bar`` returns for
each window ending at ``bars[start:]``, worked out for the whole series at once (what a backtest
asks for); ``windowed_signals`` below is its definition, and the strategies' tests hold every
shipped ``on_series`` to it.

A rule strategy's confidence is a stated conviction set in its configuration, not a probability:
the risk checks' minimum confidence applies to it as to any signal, and a backtest report puts
the strategy's measured hit rate beside it. The ai model's confidence is its calibrated
probability.

Pure: no Django, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from trading.marketdata.bars import Bar


@dataclass(frozen=True, slots=True)
class SignalIntent:
    """A signal a strategy wants sent: a BUY or SELL of ``notional`` (quote to spend) or a close
    of the whole position (``close_position``), at ``confidence``. ``details`` are what the
    signal records beside it (a model's ``probability_up`` and ``features``)."""

    symbol: str
    side: str
    confidence: Decimal
    notional: Decimal | None = None
    close_position: bool = False
    details: Mapping[str, Any] | None = None


class Strategy(Protocol):
    kind: str
    warmup: int

    @property
    def version(self) -> str:
        """What identifies the decisions it makes: its kind and parameters, or a model version."""
        ...

    def on_bar(self, window: Sequence[Bar]) -> list[SignalIntent]: ...


def windowed_signals(
    strategy: Strategy, bars: Sequence[Bar], start: int
) -> list[list[SignalIntent]]:
    """What ``on_series(bars, start)`` must return: for each ``i`` from ``start``, ``on_bar`` of
    the window ending at ``bars[i]`` (its last ``warmup`` bars)."""
    span = max(1, strategy.warmup)
    return [strategy.on_bar(bars[max(0, i + 1 - span) : i + 1]) for i in range(start, len(bars))]


class InvalidParameters(ValueError):
    """A strategy's parameters that its kind cannot run with; the message says why."""


def whole(parameters: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = parameters.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameters(
            f"{name} must be a whole number from {low} to {high}, got {value!r}"
        )
    return value


def number(
    parameters: Mapping[str, Any], name: str, default: str, low: Decimal, high: Decimal
) -> Decimal:
    value = parameters.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise InvalidParameters(f"{name} must be a decimal string, got {value!r}")
    try:
        result = Decimal(str(value))
    except ArithmeticError:
        raise InvalidParameters(f"{name} must be a decimal string, got {value!r}") from None
    if not result.is_finite() or not low <= result <= high:
        raise InvalidParameters(f"{name} must be from {low} to {high}, got {value!r}")
    return result


def unknown(parameters: Mapping[str, Any], known: set[str]) -> None:
    extra = sorted(set(parameters) - known)
    if extra:
        raise InvalidParameters(f"unknown parameters: {', '.join(extra)} (known: {sorted(known)})")


def check_confidence(confidence: Decimal) -> Decimal:
    if not isinstance(confidence, Decimal) or not Decimal(0) <= confidence <= Decimal(1):
        raise InvalidParameters(f"confidence must be a Decimal from 0 to 1, got {confidence!r}")
    return confidence
