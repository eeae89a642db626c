"""The catalogue of system checks: the original spec's integration harness (10 scenarios) and
end-to-end suite (8 scenarios), run against the running platform.

Every scenario reaches the platform the way its users and services do: the web pages over HTTP
(``ctx.get``), Celery for calls between services, Redis for the event log, the database for the
fate of signals. It trades only through ``ctx.sandbox_signal``, on the sandbox account, and
closes what it opens (the runner flattens the sandbox at the end as a safety net). An outcome
is PASS only for what actually ran and held; FAIL carries the numbers; SKIP says why the
scenario could not run safely here.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from trading.models import LearningRecord, Position, Signal
from trading.observability.services import SERVICES
from trading.selftest.base import Context, HttpAnswer, Outcome, scenario

INTEGRATION = "integration"
E2E = "e2e"

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
# Trades that are meant to pass the risk checks carry full confidence, so that they pass
# whatever minimum the operator has set; the risk scenario sends low confidence on purpose.
TRADE_CONFIDENCE = "1"
SMALL_NOTIONAL = Decimal("50")
FLOW_NOTIONAL = "100"

# The trading flow of one signal, in the order the event log must hold it (the design's flow).
FLOW = (
    "signal.generated",
    "order.requested",
    "order.submitted",
    "order.filled",
    "position.opened",
    "position.closed",
    "learning.recorded",
)

SignalStatus = Signal.Status
# A signal exec-risk has decided: denied, or its order answered by the exchange.
DECIDED = frozenset(set(SignalStatus) - {SignalStatus.PENDING, SignalStatus.SUBMITTED})
# A signal whose story is over: nothing more will fill.
FINISHED = frozenset(
    {SignalStatus.FILLED, SignalStatus.DENIED, SignalStatus.REJECTED, SignalStatus.FAILED}
)


# --- small helpers --------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _percentile(values: Iterable[float], percent: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _qty(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _answer(answer: HttpAnswer) -> str:
    """An HTTP answer in a few words, for a failure's detail."""
    if answer.status is None:
        return f"no answer ({answer.body})"
    failing = answer.body.get("failing") if isinstance(answer.body, dict) else None
    return f"HTTP {answer.status}" + (f" (failing: {', '.join(failing)})" if failing else "")


def _service_pages(ctx: Context, page: str) -> dict[str, HttpAnswer]:
    """``/services/<s>/<page>`` of every service."""
    return {name: ctx.get(f"/services/{name}/{page}") for name in SERVICES}


def _ready_paths() -> list[str]:
    return ["/ready", *(f"/services/{name}/ready" for name in SERVICES)]


def _not_ready(ctx: Context) -> list[str]:
    """The ready endpoints (web and every service) that do not answer 200, described."""
    answers = {path: ctx.get(path) for path in _ready_paths()}
    return [f"{path}: {_answer(a)}" for path, a in answers.items() if a.status != 200]


def _parse_metrics(text: object) -> tuple[list, str]:
    """The metric families of a Prometheus text page, or an error saying why it does not parse."""
    from prometheus_client.parser import text_string_to_metric_families

    if not isinstance(text, str):
        return [], f"not a text page: {type(text).__name__}"
    try:
        return list(text_string_to_metric_families(text)), ""
    except (ValueError, TypeError, IndexError, KeyError) as error:
        return [], f"{type(error).__name__}: {error}"


def _log_clock() -> datetime:
    """Now, by the clock of the Redis server that stamps event-log ids."""
    from trading.store import redis_client

    seconds, micros = redis_client().time()
    return datetime.fromtimestamp(seconds + micros / 1e6, UTC)


def _events_for(correlation_id: str, since: datetime | None) -> list[tuple[str, object]]:
    """The events of one correlation id still in the log, oldest first, with their stream ids."""
    from trading.events.replay import MAX_LIMIT, read_window

    return read_window(correlation_id=correlation_id, since=since, limit=MAX_LIMIT)


def _sweep() -> dict[str, dict]:
    from trading.analytics.supervision import sweep

    return sweep()


def _down(problems: list[str]) -> bool:
    """Whether the sweep counts the service as not ready (rather than degraded otherwise)."""
    return any(p.startswith("not ready") for p in problems)


# --- trading on the sandbox -----------------------------------------------------------------


def _wait_signals(
    signals: list[Signal], until: frozenset[str], timeout: float
) -> tuple[list[Signal], bool]:
    """The signals as they stand once every status is in ``until`` (True), or when the time is
    up (False); in the order given."""
    ids = [s.pk for s in signals]
    deadline = time.monotonic() + timeout
    while True:
        rows = {s.pk: s for s in Signal.objects.filter(pk__in=ids)}
        current = [rows[i] for i in ids]
        if all(s.status in until for s in current):
            return current, True
        if time.monotonic() > deadline:
            return current, False
        time.sleep(0.1)


def _fate(signal: Signal) -> str:
    text = f"{signal.side} {signal.symbol} {signal.status}"
    if signal.reason:
        text += f" {signal.reason}"
    if signal.detail:
        text += f" ({signal.detail})"
    return text


def _seconds_to_fate(signal: Signal) -> float:
    return (signal.updated_at - signal.created_at).total_seconds()


def _small_quantity(symbol: str) -> tuple[Decimal | None, str]:
    """A market-order quantity worth about 50 USDT at the latest price, or why there is none."""
    from trading.marketdata.prices import latest_quote
    from trading.marketdata.services import symbol_rules

    quote = latest_quote(symbol)
    rules = symbol_rules().get(symbol)
    if quote is None:
        return None, f"no price for {symbol} yet"
    if rules is None:
        return None, f"no exchange rules for {symbol}"
    quantity = rules.round_quantity(SMALL_NOTIONAL / quote.price, market=True)
    if quantity <= 0:
        return None, f"50 USDT of {symbol} is less than one step"
    return quantity, ""


def _close_positions(ctx: Context, symbols: Iterable[str] | None = None) -> list[str]:
    """Closes the sandbox's open positions (in ``symbols``, or all) with signals for their full
    quantity; returns what could not be closed."""
    positions = Position.objects.filter(account=ctx.account, status=Position.Status.OPEN)
    if symbols is not None:
        positions = positions.filter(symbol__in=list(symbols))
    closing = [
        ctx.sandbox_signal(
            p.symbol,
            "SELL" if p.quantity > 0 else "BUY",
            confidence=TRADE_CONFIDENCE,
            quantity=_qty(abs(p.quantity)),
            notional=None,
        )
        for p in positions
        if p.quantity
    ]
    if not closing:
        return []
    closed, _ = _wait_signals(closing, FINISHED, timeout=20)
    return [f"closing: {_fate(s)}" for s in closed if s.status != SignalStatus.FILLED]


def _submit_together(ctx: Context, orders: list[dict]) -> list[Signal]:
    """Sends the signals one right after the other, so exec-risk decides them concurrently."""
    return [ctx.sandbox_signal(**order) for order in orders]


@dataclass
class Cycle:
    """One round trip on the sandbox: a BUY, a SELL of the whole position, and their events."""

    symbol: str
    since: datetime
    buy: Signal | None = None
    sell: Signal | None = None
    position_id: int | None = None
    events: list[str] = field(default_factory=list)  # event types of the BUY's correlation id
    timings_ms: dict[str, float] = field(default_factory=dict)
    problem: str = ""  # empty when the cycle went all the way

    @property
    def correlation_id(self) -> str:
        return str(self.buy.correlation_id) if self.buy else ""

    def data(self) -> dict:
        return {
            "symbol": self.symbol,
            "correlation_id": self.correlation_id,
            "events": self.events,
            **self.timings_ms,
        }


def _trading_cycle(ctx: Context, symbol: str, wanted: Iterable[str] = FLOW) -> Cycle:
    """BUY ``FLOW_NOTIONAL`` USDT of ``symbol`` on the sandbox, wait until it is filled, SELL the
    whole position, wait until it is closed, then wait for the ``wanted`` events of the BUY's
    correlation id (position events and ``learning.recorded`` carry the opening signal's)."""
    problems = _close_positions(ctx, [symbol])  # start flat, so the BUY opens its own position
    cycle = Cycle(symbol, since=_log_clock())
    if problems:
        cycle.problem = f"could not start flat in {symbol}: {'; '.join(problems)}"
        return cycle
    started = time.perf_counter()
    buy = ctx.sandbox_signal(symbol, "BUY", confidence=TRADE_CONFIDENCE, notional=FLOW_NOTIONAL)
    (cycle.buy,), _ = _wait_signals([buy], FINISHED, timeout=20)
    cycle.timings_ms["buy_filled_ms"] = _ms(time.perf_counter() - started)
    if cycle.buy.status != SignalStatus.FILLED:
        cycle.problem = f"the BUY did not fill: {_fate(cycle.buy)}"
        _close_positions(ctx, [symbol])
        return cycle
    position = Position.objects.filter(
        account=ctx.account, correlation_id=cycle.buy.correlation_id, status=Position.Status.OPEN
    ).first()
    if position is None:
        cycle.problem = "the BUY filled but no position was opened under its correlation id"
        _close_positions(ctx, [symbol])
        return cycle
    cycle.position_id = position.pk

    selling = time.perf_counter()
    sell = ctx.sandbox_signal(
        symbol,
        "SELL",
        confidence=TRADE_CONFIDENCE,
        quantity=_qty(position.quantity),
        notional=None,
    )
    (cycle.sell,), _ = _wait_signals([sell], FINISHED, timeout=20)
    cycle.timings_ms["sell_filled_ms"] = _ms(time.perf_counter() - selling)
    if cycle.sell.status != SignalStatus.FILLED:
        cycle.problem = f"the SELL did not fill: {_fate(cycle.sell)}"
        _close_positions(ctx, [symbol])
        return cycle
    if Position.objects.get(pk=position.pk).status != Position.Status.CLOSED:
        cycle.problem = f"the SELL filled but position {position.pk} is still open"
        _close_positions(ctx, [symbol])
        return cycle

    wanted = set(wanted)

    def seen() -> bool:
        cycle.events = [e.type for _, e in _events_for(cycle.correlation_id, cycle.since)]
        return wanted <= set(cycle.events)

    if not Context.wait_for(seen, timeout=15, step=0.25):
        missing = [t for t in FLOW if t in wanted and t not in cycle.events]
        cycle.problem = f"events missing 15 s after the SELL filled: {', '.join(missing)}"
    cycle.timings_ms["total_ms"] = _ms(time.perf_counter() - started)
    return cycle


def _order_problem(types: list[str], expected: Iterable[str]) -> str:
    """Empty when the ``expected`` types all appear in ``types`` in that order (first of each)."""
    expected = list(expected)
    missing = [name for name in expected if name not in types]
    if missing:
        return f"missing {', '.join(missing)}"
    for earlier, later in itertools.pairwise(expected):
        if types.index(earlier) > types.index(later):
            return f"{later} comes before {earlier}"
    return ""


# --- suite: integration (the original spec's harness) ---------------------------------------


def _health_summary(ctx: Context) -> tuple[dict[str, dict], list[str]]:
    """Each service's health (status, uptime, live workers) and what is wrong with it."""
    summary, problems = {}, []
    for name, answer in _service_pages(ctx, "health").items():
        body = answer.body if isinstance(answer.body, dict) else {}
        status, uptime = body.get("status"), body.get("uptime_seconds")
        summary[name] = {
            "http": answer.status,
            "status": status,
            "uptime_seconds": uptime,
            "workers": len(body.get("workers", [])),
            "ms": _ms(answer.seconds),
        }
        if answer.status != 200:
            problems.append(f"{name}: {_answer(answer)}, status {status}")
        elif status not in ("pass", "warn"):
            problems.append(f"{name}: status {status!r}")
        elif not isinstance(uptime, int | float) or uptime <= 0:
            problems.append(f"{name}: uptime_seconds {uptime!r}")
    return summary, problems


def _health_line(summary: dict[str, dict]) -> str:
    return ", ".join(
        f"{n} {s['status']} up {s['uptime_seconds']:.0f} s" for n, s in summary.items()
    )


@scenario(INTEGRATION, "services_healthy", "All services healthy")
def services_healthy(ctx: Context) -> Outcome:
    """Every service's health page answers 200 with status pass or warn and a positive uptime:
    a live worker consumes its queue and Redis and the database answer."""
    summary, problems = _health_summary(ctx)
    if problems:
        return Outcome.failed("; ".join(problems), services=summary)
    return Outcome.passed(_health_line(summary), services=summary)


@scenario(INTEGRATION, "readiness", "Service readiness probes")
def readiness(ctx: Context) -> Outcome:
    """The web process's ``/ready`` and every service's ready endpoint answer 200."""
    answers = {path: ctx.get(path) for path in _ready_paths()}
    timings = {path: _ms(a.seconds) for path, a in answers.items()}
    failing = [f"{path}: {_answer(a)}" for path, a in answers.items() if a.status != 200]
    if failing:
        return Outcome.failed("; ".join(failing), ms=timings)
    return Outcome.passed(f"{len(answers)} ready endpoints answer 200", ms=timings)


@scenario(INTEGRATION, "rpc", "RPC to each service")
def rpc(ctx: Context) -> Outcome:
    """A task sent to each service's own queue is run by one of its workers and answered within
    a 5 s deadline: the round trip through the broker and the result backend works."""
    from trading.observability.tasks import ping_service
    from trading.rpc import RpcTimeout, call

    round_trips, problems = {}, []
    for name, service in SERVICES.items():
        token = uuid.uuid4().hex
        started = time.perf_counter()
        try:
            answer = call(ping_service, token, queue=service.queue, timeout=5.0, retries=0)
        except RpcTimeout as error:
            problems.append(f"{name}: {error}")
            continue
        round_trips[name] = _ms(time.perf_counter() - started)
        if answer.get("payload") != token or answer.get("queue") != service.queue:
            problems.append(f"{name}: unexpected answer {answer}")
    figures = ", ".join(f"{n} {ms} ms" for n, ms in round_trips.items())
    if problems:
        return Outcome.failed("; ".join(problems), round_trip_ms=round_trips)
    return Outcome.passed(f"round trips: {figures}", round_trip_ms=round_trips)


@scenario(INTEGRATION, "signal_flow", "Signal -> execution -> position closed -> learning")
def signal_flow(ctx: Context) -> Outcome:
    """A sandbox BUY of BTCUSDT is filled and opens a position, a SELL of the whole position
    closes it, and the event log holds ``position.opened``, ``position.closed`` and the
    analytics service's ``learning.recorded`` under the signal's correlation id."""
    cycle = _trading_cycle(
        ctx, "BTCUSDT", wanted=("position.opened", "position.closed", "learning.recorded")
    )
    if cycle.problem:
        return Outcome.failed(cycle.problem, **cycle.data())
    ctx.shared["signal_flow"] = {"correlation_id": cycle.correlation_id, "since": cycle.since}
    timings = cycle.timings_ms
    return Outcome.passed(
        f"BTCUSDT round trip {cycle.correlation_id[:8]}: BUY filled in {timings['buy_filled_ms']}"
        f" ms, SELL in {timings['sell_filled_ms']} ms, learning recorded; "
        f"{len(cycle.events)} events in {timings['total_ms']} ms",
        **cycle.data(),
    )


@scenario(INTEGRATION, "concurrent_health", "100 concurrent health requests")
def concurrent_health(ctx: Context) -> Outcome:
    """100 simultaneous requests for ``/services/ai/health`` all answer 200."""
    requests = 100
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=requests) as pool:
        answers = list(pool.map(lambda _: ctx.get("/services/ai/health", 10), range(requests)))
    wall = time.perf_counter() - started
    latencies = [a.seconds for a in answers]
    figures = {
        "p50_ms": _ms(_percentile(latencies, 50)),
        "p99_ms": _ms(_percentile(latencies, 99)),
        "wall_ms": _ms(wall),
        "requests_per_second": round(requests / wall, 1),
    }
    statuses = Counter(str(a.status) for a in answers)
    line = f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, {figures['wall_ms']} ms wall"
    if statuses.get("200", 0) != requests:
        return Outcome.failed(f"answers {dict(statuses)} of {requests}; {line}", **figures)
    return Outcome.passed(f"{requests} x 200; {line}", **figures)


@scenario(INTEGRATION, "degradation_detection", "Service degradation detection")
def degradation_detection(ctx: Context) -> Outcome:
    """The analytics service's supervision sweep agrees with the ready endpoints: a service is
    ready exactly when the sweep does not count it as degraded."""
    for _attempt in range(2):  # a service changing state mid-check is asked once more
        before = _service_pages(ctx, "ready")
        verdicts = _sweep()
        after = _service_pages(ctx, "ready")
        changed = [n for n in SERVICES if before[n].status != after[n].status]
        if not changed:
            break
    else:
        return Outcome.failed(f"readiness kept changing while checking: {', '.join(changed)}")
    disagreements, lines = [], []
    for name in SERVICES:
        ready = after[name].status == 200
        degraded, problems = verdicts[name]["degraded"], verdicts[name]["problems"]
        lines.append(f"{name} {'ready' if ready else 'not ready'}/" + (
            "degraded" if degraded else "healthy"))  # fmt: skip
        if ready and degraded:
            disagreements.append(f"{name} is ready but the sweep says degraded: {problems}")
        elif not ready and not degraded:
            disagreements.append(f"{name} is {_answer(after[name])} but the sweep says healthy")
    if disagreements:
        return Outcome.failed("; ".join(disagreements), sweep=verdicts)
    return Outcome.passed("sweep and ready endpoints agree: " + ", ".join(lines), sweep=verdicts)


SUPERVISED_WORKER = "worker-ai"


def _supervisorctl(*args: str, timeout: float = 45) -> tuple[int, str]:
    """Runs ``supervisorctl`` against the platform's supervisord; returns its status and output."""
    command = [
        sys.executable,
        "-m",
        "supervisor.supervisorctl",
        "-c",
        str(Path(settings.BASE_DIR) / "deploy" / "supervisord.conf"),
        *args,
    ]
    # The config names its socket by QT_VAR_DIR: give the one this process uses.
    env = {**os.environ, "QT_VAR_DIR": str(settings.VAR_DIR)}
    try:
        done = subprocess.run(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, f"supervisorctl {' '.join(args)} did not finish within {timeout:.0f} s"
    except OSError as error:
        return -1, f"supervisorctl could not run: {error}"
    return done.returncode, (done.stdout + done.stderr).strip()


def _ai_ready(ctx: Context) -> HttpAnswer:
    return ctx.get("/services/ai/ready", timeout=3)


def _during_ai_outage(ctx: Context) -> tuple[list[str], dict]:
    """What must hold while the ai service is down: everything else stays ready, supervision
    sees ai degraded, and exec-risk still decides a signal."""
    problems, seen = [], {}
    for path in ("/ready", "/services/exec-risk/ready", "/services/analytics/ready"):
        answer = ctx.get(path)
        if answer.status != 200:
            problems.append(f"{path} answered {_answer(answer)} while ai was down")
    verdict = _sweep()["ai"]
    seen["sweep_ai_while_down"] = verdict
    if not (verdict["degraded"] and _down(verdict["problems"])):
        problems.append(f"the supervision sweep did not see ai down: {verdict}")
    signal = ctx.sandbox_signal(
        "BTCUSDT", "BUY", confidence=TRADE_CONFIDENCE, notional=str(SMALL_NOTIONAL)
    )
    (decided,), ok = _wait_signals([signal], DECIDED, timeout=15)
    seen["signal_while_down"] = _fate(decided)
    if not ok:
        problems.append(f"exec-risk did not decide a signal within 15 s: {_fate(decided)}")
    _wait_signals([decided], FINISHED, timeout=10)
    problems += _close_positions(ctx, ["BTCUSDT"])
    return problems, seen


@scenario(INTEGRATION, "service_recovery", "AI service unavailable, then recovered")
def service_recovery(ctx: Context) -> Outcome:
    """Stops the ai worker under the process supervisor: ai turns not ready within the heartbeat
    expiry while the web process, exec-risk and analytics stay ready and exec-risk still decides
    signals (graceful degradation); started again, ai is ready again. The worker is always
    started again, whatever happens in between."""
    socket_path = Path(settings.VAR_DIR) / "run" / "supervisor.sock"
    if not socket_path.exists():
        return Outcome.skipped(
            f"no process supervisor here (no socket at {socket_path}): a worker cannot be "
            "stopped and started again safely"
        )
    code, status = _supervisorctl("status", SUPERVISED_WORKER, timeout=15)
    if "STARTING" in status:  # started moments ago: give it its start-up seconds
        time.sleep(5)
        code, status = _supervisorctl("status", SUPERVISED_WORKER, timeout=15)
    if "RUNNING" not in status:
        return Outcome.skipped(f"{SUPERVISED_WORKER} is not running under supervisord: {status}")
    match = re.search(r"pid (\d+)", status)
    if match and int(match[1]) in (os.getpid(), os.getppid()):
        return Outcome.skipped(f"the checks run inside {SUPERVISED_WORKER}: it cannot stop itself")
    health = ctx.get("/services/ai/health")
    workers = health.body.get("workers", []) if isinstance(health.body, dict) else []
    if _ai_ready(ctx).status != 200:
        return Outcome.skipped("ai is not ready before the check: there is nothing to recover")
    if len(workers) > 1:
        nodes = ", ".join(w.get("node", "?") for w in workers)
        return Outcome.skipped(
            f"ai has {len(workers)} live workers ({nodes}): stopping {SUPERVISED_WORKER} here "
            "would not make it unavailable"
        )

    problems: list[str] = []
    seen: dict = {}
    expiry = settings.HEARTBEAT_EXPIRY_SECONDS
    try:
        stopping = time.perf_counter()
        code, output = _supervisorctl("stop", SUPERVISED_WORKER)
        if "stopped" not in output:
            problems.append(f"supervisorctl stop {SUPERVISED_WORKER}: {output} (exit {code})")
        else:
            down = Context.wait_for(lambda: _ai_ready(ctx).status == 503, expiry + 5, step=0.25)
            seen["ai_unready_after_s"] = round(time.perf_counter() - stopping, 2)
            if not down:
                problems.append(
                    f"/services/ai/ready still answers {_answer(_ai_ready(ctx))} "
                    f"{expiry + 5:.0f} s after {SUPERVISED_WORKER} stopped"
                )
            else:
                outage_problems, outage = _during_ai_outage(ctx)
                problems += outage_problems
                seen.update(outage)
    finally:
        starting = time.perf_counter()
        code, output = _supervisorctl("start", SUPERVISED_WORKER)
    if "started" not in output:  # "started", or "ERROR (already started)"
        return Outcome.failed(
            f"{SUPERVISED_WORKER} could not be started again: {output} (exit {code}); start it "
            f"with: supervisorctl -c deploy/supervisord.conf start {SUPERVISED_WORKER}",
            problems=problems,
            **seen,
        )
    recovered = Context.wait_for(lambda: _ai_ready(ctx).status == 200, timeout=30, step=0.25)
    seen["ai_ready_again_after_s"] = round(time.perf_counter() - starting, 2)
    if not recovered:
        problems.append(f"ai not ready 30 s after {SUPERVISED_WORKER} started again")
    else:
        verdict = _sweep()["ai"]
        seen["sweep_ai_after"] = verdict
        if _down(verdict["problems"]):
            problems.append(f"ai is ready again but the sweep still sees it down: {verdict}")
    if problems:
        return Outcome.failed("; ".join(problems), **seen)
    return Outcome.passed(
        f"ai not ready {seen['ai_unready_after_s']} s after the stop command; web, exec-risk "
        f"and analytics stayed ready and exec-risk decided a signal ({seen['signal_while_down']})"
        f"; ai ready again {seen['ai_ready_again_after_s']} s after the start command",
        **seen,
    )


NO_CONSUMER_QUEUE = "selftest-no-consumer"


def _drop_queue(queue: str) -> None:
    """Removes the messages left in a queue nobody consumes (kombu keeps it as Redis lists)."""
    from trading.store import redis_client

    client = redis_client()
    pattern = f"{settings.REDIS_PREFIX}:celery:{queue}*"
    keys = [k for k in client.scan_iter(match=pattern, count=100) if client.type(k) == "list"]
    if keys:
        client.delete(*keys)


@scenario(INTEGRATION, "rpc_timeout", "RPC deadline of 500 ms, timeout and retry")
def rpc_timeout(ctx: Context) -> Outcome:
    """A call to a queue nobody consumes gives up after its 500 ms deadline, is sent once more,
    and raises ``RpcTimeout`` after 2 attempts in about 1 s; a call to the ai service with the
    same 500 ms deadline answers."""
    from trading.observability.tasks import ping_service
    from trading.rpc import RpcTimeout, call

    started = time.perf_counter()
    try:
        answer = call(ping_service, queue=NO_CONSUMER_QUEUE, timeout=0.5, retries=1)
    except RpcTimeout as error:
        timed_out, attempts = error, error.attempts
    else:
        timed_out, attempts = None, 0
    finally:
        _drop_queue(NO_CONSUMER_QUEUE)
    elapsed = time.perf_counter() - started
    figures = {"timeout_after_ms": _ms(elapsed), "attempts": attempts}
    if timed_out is None:
        return Outcome.failed(f"a queue with no consumer answered: {answer}", **figures)
    if attempts != 2 or not 0.9 <= elapsed <= 1.5:
        return Outcome.failed(
            f"expected RpcTimeout after 2 attempts in about 1 s, got {attempts} attempts in "
            f"{figures['timeout_after_ms']} ms ({timed_out})",
            **figures,
        )
    started = time.perf_counter()
    try:
        call(ping_service, "deadline", queue=SERVICES["ai"].queue, timeout=0.5)
    except RpcTimeout as error:
        return Outcome.failed(f"ai did not answer a 500 ms call: {error}", **figures)
    figures["ai_answer_ms"] = _ms(time.perf_counter() - started)
    return Outcome.passed(
        f"RpcTimeout after {attempts} attempts in {figures['timeout_after_ms']} ms; ai answered "
        f"a 500 ms call in {figures['ai_answer_ms']} ms",
        **figures,
    )


@scenario(INTEGRATION, "event_replay", "Event replay and retention")
def event_replay(ctx: Context) -> Outcome:
    """The history of one trade read back from the event log (Redis Streams) holds its whole
    flow in order, from ``signal.generated`` to ``position.closed``; and the log's length stays
    within its retention bound (``MAXLEN ~``)."""
    from trading.events.log import events_stream, maxlen
    from trading.store import redis_client

    flow = ctx.shared.get("signal_flow")
    if flow is None:  # signal_flow did not complete in this run: make a trade of our own
        cycle = _trading_cycle(ctx, "BTCUSDT", wanted=("position.closed",))
        if cycle.problem:
            return Outcome.failed(f"no trade to replay: {cycle.problem}", **cycle.data())
        flow = {"correlation_id": cycle.correlation_id, "since": cycle.since}
    started = time.perf_counter()
    history = _events_for(flow["correlation_id"], flow["since"])
    read_ms = _ms(time.perf_counter() - started)
    types = [event.type for _, event in history]
    length, bound = redis_client().xlen(events_stream()), maxlen()
    figures = {"correlation_id": flow["correlation_id"], "events": types, "read_ms": read_ms,
               "stream_length": length, "maxlen": bound}  # fmt: skip
    problems = []
    problem = _order_problem(types, FLOW[: FLOW.index("position.closed") + 1])
    if problem:
        problems.append(f"replayed flow out of order: {problem} ({' > '.join(types)})")
    ids = [tuple(map(int, stream_id.split("-"))) for stream_id, _ in history]
    if ids != sorted(ids):
        problems.append("stream ids are not increasing")
    if length > bound * 1.1 + 100:
        problems.append(f"the event log holds {length} entries, over its bound of ~{bound}")
    if problems:
        return Outcome.failed("; ".join(problems), **figures)
    return Outcome.passed(
        f"{len(types)} events of {flow['correlation_id'][:8]} replayed in order in {read_ms} ms; "
        f"log length {length} within ~{bound}",
        **figures,
    )


@scenario(INTEGRATION, "concurrent_signals", "20 concurrent signals")
def concurrent_signals(ctx: Context) -> Outcome:
    """20 sandbox signals sent together over BTCUSDT, ETHUSDT and SOLUSDT (about 50 USDT each,
    alternately BUY and SELL so the book stays small) are all decided within 30 s, and every
    service is still ready afterwards."""
    quantities = {}
    for symbol in SYMBOLS:
        quantities[symbol], why = _small_quantity(symbol)
        if quantities[symbol] is None:
            return Outcome.failed(why)
    orders = [
        {
            "symbol": SYMBOLS[i % 3],
            "side": "BUY" if i % 2 == 0 else "SELL",
            "confidence": TRADE_CONFIDENCE,
            "quantity": _qty(quantities[SYMBOLS[i % 3]]),
            "notional": None,
        }
        for i in range(20)
    ]
    started = time.perf_counter()
    signals, all_decided = _wait_signals(_submit_together(ctx, orders), DECIDED, timeout=30)
    wall = time.perf_counter() - started
    _wait_signals(signals, FINISHED, timeout=10)
    problems = _close_positions(ctx)
    statuses = Counter(s.status for s in signals)
    reasons = Counter(s.reason for s in signals if s.reason)
    figures = {
        "statuses": dict(statuses),
        "reasons": dict(reasons),
        "all_decided_ms": _ms(wall),
        "slowest_decision_ms": _ms(max(_seconds_to_fate(s) for s in signals)),
    }
    if not all_decided:
        undecided = [_fate(s) for s in signals if s.status not in DECIDED]
        problems.insert(0, f"{len(undecided)} of 20 not decided within 30 s: {undecided}")
    if statuses.get(SignalStatus.FAILED):
        problems.append(f"{statuses[SignalStatus.FAILED]} signals failed")
    problems += _not_ready(ctx)
    if problems:
        return Outcome.failed("; ".join(problems), **figures)
    return Outcome.passed(
        f"20 signals decided in {figures['all_decided_ms']} ms ({dict(statuses)}"
        + (f", reasons {dict(reasons)}" if reasons else "")
        + "); every service still ready",
        **figures,
    )


# --- suite: e2e (the original spec's end-to-end suite) --------------------------------------


@scenario(E2E, "all_services_healthy", "All services healthy, uptime tracked")
def all_services_healthy(ctx: Context) -> Outcome:
    """Every service is healthy with a positive uptime, and the uptime is tracked: a second
    reading a second later is larger."""
    first, problems = _health_summary(ctx)
    if problems:
        return Outcome.failed("; ".join(problems), services=first)
    time.sleep(1.0)
    second, problems = _health_summary(ctx)
    for name in SERVICES:
        if not problems and second[name]["uptime_seconds"] <= first[name]["uptime_seconds"]:
            problems.append(
                f"{name}: uptime did not grow ({first[name]['uptime_seconds']} s, then "
                f"{second[name]['uptime_seconds']} s)"
            )
    if problems:
        return Outcome.failed("; ".join(problems), services=second)
    return Outcome.passed(_health_line(second) + "; uptimes growing", services=second)


@scenario(E2E, "full_trading_cycle", "Full trading cycle (ETHUSDT)")
def full_trading_cycle(ctx: Context) -> Outcome:
    """On ETHUSDT: signal -> order requested -> submitted -> filled -> position opened -> SELL ->
    position closed -> learning recorded, every step an event under the signal's correlation id,
    and the learning record stored against the closed position."""
    cycle = _trading_cycle(ctx, "ETHUSDT")
    if cycle.problem:
        return Outcome.failed(cycle.problem, **cycle.data())
    if not LearningRecord.objects.filter(position_id=cycle.position_id).exists():
        return Outcome.failed("learning.recorded was published but no record is stored")
    timings = cycle.timings_ms
    return Outcome.passed(
        f"ETHUSDT: BUY filled in {timings['buy_filled_ms']} ms, SELL in "
        f"{timings['sell_filled_ms']} ms; all {len(FLOW)} steps in the event log; "
        f"cycle {timings['total_ms']} ms",
        **cycle.data(),
    )


def _trades_outcome(ctx: Context, signals: list[Signal], started: float, label: str) -> Outcome:
    """Waits for sandbox trades, closes what they opened and judges them: all decided and at
    least 95% filled."""
    settled, _ = _wait_signals(signals, FINISHED, timeout=30)
    wall = time.perf_counter() - started
    problems = _close_positions(ctx)
    filled = [s for s in settled if s.status == SignalStatus.FILLED]
    decided = [s for s in settled if s.status in DECIDED]
    rate = len(filled) / len(settled)
    first = min(s.created_at for s in settled)
    last = max(s.updated_at for s in decided) if decided else first
    span = max((last - first).total_seconds(), 1e-3)
    figures = {
        "success_rate": round(rate, 3),
        "trades_per_second": round(len(decided) / span, 2),
        "wall_ms": _ms(wall),
        "fates": [_fate(s) for s in settled],
    }
    if len(decided) < len(settled):
        problems.insert(0, f"{len(settled) - len(decided)} of {len(settled)} not decided in 30 s")
    if rate < 0.95:
        others = [_fate(s) for s in settled if s.status != SignalStatus.FILLED]
        problems.insert(0, f"success rate {rate:.0%} < 95%: {others}")
    line = (
        f"{len(filled)}/{len(settled)} {label} filled ({rate:.0%}), "
        f"{figures['trades_per_second']} trades/s"
    )
    if problems:
        return Outcome.failed(line + "; " + "; ".join(problems), **figures)
    return Outcome.passed(line, **figures)


@scenario(E2E, "multi_symbol", "BTCUSDT, ETHUSDT and SOLUSDT at once")
def multi_symbol(ctx: Context) -> Outcome:
    """Three sandbox signals, one per symbol, sent together: at least 95% of them filled."""
    started = time.perf_counter()
    signals = _submit_together(
        ctx,
        [
            {"symbol": s, "side": "BUY", "confidence": TRADE_CONFIDENCE,
             "notional": str(SMALL_NOTIONAL)}
            for s in SYMBOLS
        ],
    )  # fmt: skip
    return _trades_outcome(ctx, signals, started, "symbols")


@dataclass(frozen=True)
class RiskCase:
    name: str
    reason: str
    signal: dict
    skip: str = ""  # why this case cannot be made here


def _risk_cases(symbol: str) -> list[RiskCase]:
    from trading.marketdata.prices import latest_quote
    from trading.marketdata.services import symbol_rules
    from trading.risk.services import limits_for

    limits = limits_for(symbol)
    base = {"symbol": symbol, "side": "BUY"}
    cases = []

    minimum = limits.min_confidence
    low = Decimal("0.5") if minimum > Decimal("0.5") else minimum / 2
    cases.append(
        RiskCase(
            "low confidence",
            "LOW_CONFIDENCE",
            {**base, "confidence": str(low), "notional": str(SMALL_NOTIONAL)},
            skip="" if minimum > 0 else "the minimum confidence is 0: no confidence is too low",
        )
    )

    oversize = limits.max_position_notional * Decimal("1.5") + 100
    quote, rules = latest_quote(symbol), symbol_rules().get(symbol)
    skip = ""
    if quote is None or rules is None:
        skip = f"no price or exchange rules for {symbol}"
    else:
        quantity = rules.round_quantity(oversize / quote.price, market=True)
        too_big = [limit for limit in (rules.market_max_qty, rules.max_qty) if limit]
        if any(quantity > limit for limit in too_big) or (
            rules.max_notional and rules.apply_max_to_market and oversize > rules.max_notional
        ):
            skip = (
                f"the position limit {limits.max_position_notional} is beyond what the exchange "
                "takes in one market order"
            )
    cases.append(
        RiskCase(
            "oversized position",
            "MAX_POSITION_NOTIONAL",
            {**base, "confidence": TRADE_CONFIDENCE, "notional": str(oversize)},
            skip=skip,
        )
    )

    cases.append(
        RiskCase(
            "excessive leverage",
            "MAX_LEVERAGE",
            {**base, "confidence": TRADE_CONFIDENCE, "notional": str(SMALL_NOTIONAL),
             "leverage": limits.max_leverage + 1},
        )
    )  # fmt: skip
    return cases


@scenario(E2E, "risk_validation", "Risk limits deny with their reasons")
def risk_validation(ctx: Context) -> Outcome:
    """exec-risk denies a signal below the minimum confidence (LOW_CONFIDENCE), one whose
    position would exceed the symbol's maximum position notional (MAX_POSITION_NOTIONAL) and one
    above the maximum leverage (MAX_LEVERAGE), each with exactly that reason."""
    symbol = "BTCUSDT"
    cases = _risk_cases(symbol)
    runnable = [c for c in cases if not c.skip]
    signals = _submit_together(ctx, [c.signal for c in runnable])
    decided, _ = _wait_signals(signals, FINISHED, timeout=20)
    results, problems = {}, []
    for case, signal in zip(runnable, decided, strict=True):
        results[case.name] = _fate(signal)
        if signal.status != SignalStatus.DENIED or signal.reason != case.reason:
            problems.append(f"{case.name}: expected denied {case.reason}, got {_fate(signal)}")
    if any(s.status != SignalStatus.DENIED for s in decided):
        problems += _close_positions(ctx, [symbol])
    skipped = {c.name: c.skip for c in cases if c.skip}
    if problems:
        return Outcome.failed("; ".join(problems), results=results, skipped=skipped)
    if skipped:
        return Outcome.skipped(
            "; ".join(f"{name}: {why}" for name, why in skipped.items())
            + (f" (the others held: {results})" if results else ""),
            results=results,
        )
    return Outcome.passed(
        "denied as expected: " + ", ".join(f"{c.name} {c.reason}" for c in runnable),
        results=results,
    )


def _histogram_totals(families: list, name: str) -> tuple[float, float]:
    """The ``_count`` and ``_sum`` of a histogram family, over all its label sets."""
    count = total = 0.0
    for family in families:
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_count":
                count += sample.value
            elif sample.name == f"{name}_sum":
                total += sample.value
    return count, total


@scenario(E2E, "performance", "Health under 100 ms, signal generation under 1000 ms")
def performance(ctx: Context) -> Outcome:
    """The median of 20 requests to each service's health page is under 100 ms, and the ai
    service's signal latency (bar published to signal published, from its histogram) averages
    under 1 s."""
    medians, problems = {}, []
    for name in SERVICES:
        answers = [ctx.get(f"/services/{name}/health") for _ in range(20)]
        medians[name] = _ms(statistics.median(a.seconds for a in answers))
        bad = [a for a in answers if a.status != 200]
        if bad:
            problems.append(f"{name}: {len(bad)} of 20 health requests answered {_answer(bad[0])}")
        elif medians[name] >= 100:
            problems.append(f"{name}: median health latency {medians[name]} ms >= 100 ms")
    figures: dict = {"health_median_ms": medians}
    health_line = "health medians " + ", ".join(f"{n} {ms} ms" for n, ms in medians.items())

    page = ctx.get("/services/ai/metrics")
    families, error = _parse_metrics(page.body)
    if page.status != 200 or error:
        problems.append(f"/services/ai/metrics: {_answer(page)} {error}".strip())
        return Outcome.failed("; ".join(problems), **figures)
    count, total = _histogram_totals(families, "ai_service_signal_latency_seconds")
    figures["signals_measured"] = int(count)
    if problems:
        return Outcome.failed("; ".join(problems), **figures)
    if count == 0:
        return Outcome.skipped(
            f"{health_line}; no signal latency measured yet (the ai service has produced no "
            "signal: no bars or no model yet)",
            **figures,
        )
    average = total / count
    figures["signal_latency_average_ms"] = _ms(average)
    signal_line = f"signal generation averages {_ms(average)} ms over {int(count)} signals"
    if average >= 1.0:
        return Outcome.failed(f"{signal_line} (>= 1000 ms); {health_line}", **figures)
    return Outcome.passed(f"{health_line}; {signal_line}", **figures)


@scenario(E2E, "load", "10 concurrent trades")
def load(ctx: Context) -> Outcome:
    """Ten sandbox trades of 50 USDT sent together over the three symbols are all decided and at
    least 95% filled; reports the throughput in trades per second."""
    started = time.perf_counter()
    signals = _submit_together(
        ctx,
        [
            {"symbol": SYMBOLS[i % 3], "side": "BUY", "confidence": TRADE_CONFIDENCE,
             "notional": str(SMALL_NOTIONAL)}
            for i in range(10)
        ],
    )  # fmt: skip
    return _trades_outcome(ctx, signals, started, "trades")


@scenario(E2E, "failure_recovery", "INVALIDUSDT rejected, services healthy after")
def failure_recovery(ctx: Context) -> Outcome:
    """A signal for INVALIDUSDT is refused at the API's validation with an error on ``symbol``,
    nothing is stored, and every service is still ready afterwards."""
    from trading.api.serializers import SignalCreateSerializer

    sandbox_signals = Signal.objects.filter(account=ctx.account).count()
    serializer = SignalCreateSerializer(
        data={"symbol": "INVALIDUSDT", "side": "BUY", "confidence": "0.9", "notional": "50"}
    )
    valid = serializer.is_valid()
    errors = {k: [str(m) for m in v] for k, v in serializer.errors.items()}
    problems = []
    if valid or "symbol" not in errors:
        problems.append(f"INVALIDUSDT was not refused on symbol: valid={valid}, errors={errors}")
    stored = Signal.objects.filter(symbol="INVALIDUSDT").count()
    if stored:
        problems.append(f"{stored} INVALIDUSDT signals are stored")
    if Signal.objects.filter(account=ctx.account).count() != sandbox_signals:
        problems.append("the refused signal changed the sandbox's signals")
    problems += _not_ready(ctx)
    if problems:
        return Outcome.failed("; ".join(problems), errors=errors)
    return Outcome.passed(
        f"refused: {errors['symbol'][0]}; nothing stored; every service ready", errors=errors
    )


@scenario(E2E, "metrics_and_ready", "/metrics and /ready valid for every service")
def metrics_and_ready(ctx: Context) -> Outcome:
    """``/metrics`` and every ``/services/<s>/metrics`` parse as Prometheus text, each service's
    page starting with its ``<prefix>_uptime_seconds``; ``/ready`` and every service's ready
    endpoint answer 200."""
    problems, counts = [], {}
    pages: list[tuple[str, str | None]] = [("/metrics", None)]
    pages += [(f"/services/{n}/metrics", f"{s.metric_prefix}_uptime_seconds")
              for n, s in SERVICES.items()]  # fmt: skip
    for path, first in pages:
        answer = ctx.get(path)
        families, error = _parse_metrics(answer.body)
        counts[path] = len(families)
        if answer.status != 200:
            problems.append(f"{path}: {_answer(answer)}")
        elif error:
            problems.append(f"{path} does not parse: {error}")
        elif not families:
            problems.append(f"{path} holds no metrics")
        elif first is not None and families[0].name != first:
            problems.append(f"{path} starts with {families[0].name}, not {first}")
    problems += _not_ready(ctx)
    if problems:
        return Outcome.failed("; ".join(problems), families=counts)
    return Outcome.passed(
        "metric families: "
        + ", ".join(f"{p} {n}" for p, n in counts.items())
        + f"; {len(_ready_paths())} ready endpoints answer 200",
        families=counts,
    )
