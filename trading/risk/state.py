"""The trading state machine: ACTIVE, REDUCING, HALTED, as pure functions.

- ACTIVE: every order the risk checks approve may be sent.
- REDUCING: only orders that shrink an existing position, without flipping it, may be sent.
- HALTED: no orders at all; the emergency stop.

Tightening (towards HALTED) is always allowed, to anyone, at any time: an operator must never be
refused a stop. Loosening needs a person: ``automatic_state`` only ever tightens, and leaving
HALTED additionally needs an explicit ``resume=True``, so that no generic "set the state" code path,
replayed event or retried task can undo an emergency stop by accident.

Persisting the state, auditing who changed it and publishing ``risk.state_changed`` belong to the
service that calls these functions.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from trading.risk.reasons import Reason


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


# How tight each state is; automatic changes only ever move up this scale.
_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class InvalidTransition(ValueError):
    """A state change the machine does not allow; ``current`` and ``target`` say which."""

    def __init__(self, current: TradingState, target: TradingState, why: str) -> None:
        super().__init__(f"cannot go from {current} to {target}: {why}")
        self.current = current
        self.target = target


def transition(
    current: TradingState | str, target: TradingState | str, *, resume: bool = False
) -> TradingState:
    """Return ``target`` if the machine may go there from ``current``; raise otherwise.

    Allowed:

    - ACTIVE -> REDUCING, ACTIVE -> HALTED, REDUCING -> HALTED: tightening, always allowed.
    - REDUCING -> ACTIVE: an operator lifting reduce-only.
    - HALTED -> ACTIVE, HALTED -> REDUCING: only with ``resume=True``, the operator's explicit
      resume (HALTED -> REDUCING lets them unwind positions before trading normally again).

    Raises ``InvalidTransition`` when leaving HALTED without ``resume=True``, and when ``target``
    equals ``current`` (nothing would change, and an audit record of a non-change would mislead;
    callers that want idempotency compare first). Raises ``ValueError`` for an unknown state name.
    """
    current, target = TradingState(current), TradingState(target)
    if current == target:
        raise InvalidTransition(current, target, f"already {current}")
    if current == TradingState.HALTED and not resume:
        raise InvalidTransition(current, target, "leaving HALTED needs an explicit resume")
    return target


def automatic_state(
    current: TradingState | str,
    daily_pnl: Decimal,
    daily_loss_limit: Decimal,
    equity: Decimal,
    peak_equity: Decimal,
    max_drawdown: Decimal,
) -> tuple[TradingState, Reason | None]:
    """Return the state the limits require and the reason for a change, or ``(current, None)``.

    - A loss that reaches the daily loss limit (``daily_pnl <= -daily_loss_limit``) halts:
      ``(HALTED, DAILY_LOSS_LIMIT)``.
    - Otherwise a drawdown that reaches the maximum (``(peak - equity) / peak >= max_drawdown``)
      reduces: ``(REDUCING, MAX_DRAWDOWN)``.
    - A state is never loosened: a REDUCING book stays REDUCING when the drawdown recovers, and a
      HALTED one stays HALTED whatever the numbers (the reason is then ``None``). A returned state
      other than ``current`` is always one ``transition(current, new)`` accepts.

    Both are stop triggers, so reaching the limit exactly trips them. ``daily_loss_limit`` is a
    positive amount in the quote currency; ``max_drawdown`` a fraction in (0, 1]. When
    ``peak_equity`` is not positive there is no drawdown to measure; an ``equity`` above
    ``peak_equity`` counts as a drawdown of zero. Raises ``ValueError`` for a non-positive loss
    limit or a drawdown fraction outside (0, 1].
    """
    current = TradingState(current)
    if daily_loss_limit <= 0:
        raise ValueError(f"daily_loss_limit must be positive, got {daily_loss_limit}")
    if not 0 < max_drawdown <= 1:
        raise ValueError(f"max_drawdown must be a fraction in (0, 1], got {max_drawdown}")

    if daily_pnl <= -daily_loss_limit:
        required, reason = TradingState.HALTED, Reason.DAILY_LOSS_LIMIT
    elif peak_equity > 0 and (peak_equity - equity) / peak_equity >= max_drawdown:
        required, reason = TradingState.REDUCING, Reason.MAX_DRAWDOWN
    else:
        return current, None

    if _SEVERITY[required] <= _SEVERITY[current]:
        return current, None
    return required, reason
