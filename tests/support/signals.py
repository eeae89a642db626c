"""Signals through the intake, for tests that decide them in their own process."""

from __future__ import annotations

from decimal import Decimal

from trading.execution.intake import SignalRequest, submit_signal
from trading.models import Account, Signal


def saved_signal(
    account: Account, *, hand_off: bool = False, source: str = "api", **fields
) -> Signal:
    """A signal saved with its ``signal.generated`` event, as the API saves one; not handed to
    exec-risk unless ``hand_off`` (the test calls ``process_signal`` itself)."""
    confidence = fields.pop("confidence", Decimal("0.9"))
    request = SignalRequest(confidence=Decimal(confidence), **fields)
    return submit_signal(account, request, producer="web", source=source, hand_off=hand_off)
