"""The building blocks of the system checks: a scenario is a function of a ``Context`` that
returns an ``Outcome``; ``@scenario`` puts it in its suite's catalogue, in declaration order."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from trading.models import Account, Signal


class Status(StrEnum):
    PASS = "PASS"  # noqa: S105 - a check outcome, not a password
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Outcome:
    status: Status
    detail: str
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, detail: str, **data: Any) -> Outcome:
        return cls(Status.PASS, detail, data)

    @classmethod
    def failed(cls, detail: str, **data: Any) -> Outcome:
        return cls(Status.FAIL, detail, data)

    @classmethod
    def skipped(cls, reason: str, **data: Any) -> Outcome:
        """For a scenario that could not run safely here: never a PASS for what did not run."""
        return cls(Status.SKIP, reason, data)


@dataclass(frozen=True)
class HttpAnswer:
    status: int | None  # None when nothing answered
    body: Any  # parsed JSON when the answer was JSON, else text
    seconds: float
    content_type: str = ""


class Context:
    """What a scenario may use: the platform's web address, the sandbox account, and helpers.

    Signals made here trade on the sandbox account, never on the operator's book; the runner
    flattens and clears the sandbox when the run ends."""

    def __init__(self, base_url: str, account: Account) -> None:
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.shared: dict[str, Any] = {}

    def get(self, path: str, timeout: float = 5.0) -> HttpAnswer:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as response:  # noqa: S310
                raw = response.read()
                status, content_type = response.status, response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
            content_type = error.headers.get("Content-Type", "")
        except (urllib.error.URLError, OSError) as error:
            return HttpAnswer(None, str(error), time.perf_counter() - started)
        seconds = time.perf_counter() - started
        body: Any = raw.decode(errors="replace")
        if "json" in content_type:
            try:
                body = json.loads(raw)
            except ValueError:
                pass
        return HttpAnswer(status, body, seconds, content_type)

    def sandbox_signal(
        self,
        symbol: str,
        side: str,
        *,
        confidence: str = "0.9",
        notional: str | None = "100",
        quantity: str | None = None,
        leverage: int = 1,
    ) -> Signal:
        """A signal on the sandbox account, sent to exec-risk like any other."""
        from trading.execution.intake import SignalRequest, submit_signal

        request = SignalRequest(
            symbol=symbol,
            side=side,
            confidence=Decimal(confidence),
            notional=None if quantity is not None else Decimal(notional),
            quantity=None if quantity is None else Decimal(quantity),
            leverage=leverage,
        )
        # The system checks run in the analytics service.
        signal = submit_signal(self.account, request, producer="analytics", source="selftest")
        return signal

    def wait_signal(self, signal: Signal, timeout: float = 20.0) -> Signal:
        """The signal once exec-risk has decided it (its status is no longer pending or
        submitted), or as it stands when the time is up."""
        deadline = time.monotonic() + timeout
        while True:
            current = Signal.objects.get(pk=signal.pk)
            settled = current.status not in (Signal.Status.PENDING, Signal.Status.SUBMITTED)
            if settled or time.monotonic() > deadline:
                return current
            time.sleep(0.1)

    @staticmethod
    def wait_for(condition: Callable[[], Any], timeout: float, step: float = 0.1) -> Any:
        """The first truthy value of ``condition()``, or None when the time is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(step)
        return None


ScenarioFunction = Callable[[Context], Outcome]


@dataclass(frozen=True)
class Scenario:
    suite: str
    name: str
    title: str
    run: ScenarioFunction


SUITES: dict[str, list[Scenario]] = {"integration": [], "e2e": []}


def scenario(suite: str, name: str, title: str) -> Callable[[ScenarioFunction], ScenarioFunction]:
    def register(function: ScenarioFunction) -> ScenarioFunction:
        if any(s.name == name for s in SUITES[suite]):
            raise ValueError(f"scenario {suite}/{name} is declared twice")
        SUITES[suite].append(Scenario(suite, name, title, function))
        return function

    return register
