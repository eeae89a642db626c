"""The integration suite: the original spec's harness (10 scenarios)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings

from trading import bus
from trading.ledger.book import AccountKind
from trading.observability.services import SERVICES
from trading.selftest.base import Context, HttpAnswer, Outcome, scenario
from trading.selftest.scenarios.common import (
    DECIDED,
    FINISHED,
    FLOW,
    INTEGRATION,
    SMALL_NOTIONAL,
    SYMBOLS,
    TRADE_CONFIDENCE,
    SignalStatus,
    _answer,
    _close_positions,
    _down,
    _fate,
    _health_line,
    _health_summary,
    _ms,
    _not_ready,
    _order_problem,
    _percentile,
    _qty,
    _ready_paths,
    _round_trip_events,
    _seconds_to_fate,
    _service_pages,
    _small_quantity,
    _submit_together,
    _sweep,
    _trading_cycle,
    _wait_signals,
)

# --- suite: integration (the original spec's harness) ---------------------------------------


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
    from trading.rpc import RpcTimeout, call

    round_trips, problems = {}, []
    for name, service in SERVICES.items():
        token = uuid.uuid4().hex
        started = time.perf_counter()
        try:
            answer = call(bus.PING_SERVICE, token, queue=service.queue, timeout=5.0, retries=0)
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
    closes it, and the event log holds ``position.opened`` and the analytics service's
    ``learning.recorded`` under the BUY's correlation id, ``position.closed`` under the SELL's."""
    cycle = _trading_cycle(
        ctx, "BTCUSDT", wanted=("position.opened", "position.closed", "learning.recorded")
    )
    if cycle.problem:
        return Outcome.failed(cycle.problem, **cycle.data())
    ctx.shared["signal_flow"] = cycle.flow
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
    from trading.rpc import RpcTimeout, call

    started = time.perf_counter()
    try:
        answer = call(bus.PING_SERVICE, queue=NO_CONSUMER_QUEUE, timeout=0.5, retries=1)
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
        call(bus.PING_SERVICE, "deadline", queue=SERVICES["ai"].queue, timeout=0.5)
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
    """The history of one round trip (its BUY's and its SELL's correlation ids) read back from
    the event log (Redis Streams) holds its whole flow in order, from ``signal.generated`` to
    ``position.closed``; and the log's length stays within its retention bound (``MAXLEN ~``)."""
    from trading.events.log import events_stream, maxlen
    from trading.store import redis_client

    flow = ctx.shared.get("signal_flow")
    if flow is None:  # signal_flow did not complete in this run: make a trade of our own
        cycle = _trading_cycle(ctx, "BTCUSDT", wanted=("position.closed",))
        if cycle.problem:
            return Outcome.failed(f"no trade to replay: {cycle.problem}", **cycle.data())
        flow = cycle.flow
    started = time.perf_counter()
    history = _round_trip_events(flow)
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
    alternately BUY and SELL so the book stays small) are all decided within 30 s, none denied
    for want of balance, and every service is still ready afterwards. A spot sandbox sells only
    what it holds, so it first buys, and waits for, what its SELLs will sell, whichever of the 20
    exec-risk decides first; a futures sandbox's SELLs open shorts, and none may be denied for
    want of margin."""
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
    futures = ctx.account.kind == AccountKind.FUTURES
    sells = Counter(order["symbol"] for order in orders if order["side"] == "SELL" and not futures)
    stock = [
        ctx.sandbox_signal(symbol, "BUY", confidence=TRADE_CONFIDENCE,
                           quantity=_qty(quantities[symbol] * count), notional=None)
        for symbol, count in sorted(sells.items())
    ]  # fmt: skip
    stocked, _ = _wait_signals(stock, FINISHED, timeout=20)
    unstocked = [_fate(s) for s in stocked if s.status != SignalStatus.FILLED]
    if unstocked:
        _close_positions(ctx)
        return Outcome.failed(f"could not buy what the SELLs sell: {unstocked}")
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
    short = [
        _fate(s) for s in signals if s.reason in ("INSUFFICIENT_BALANCE", "INSUFFICIENT_MARGIN")
    ]
    if short:
        problems.append(f"denied for want of a balance the sandbox holds: {short}")
    problems += _not_ready(ctx)
    if problems:
        return Outcome.failed("; ".join(problems), **figures)
    return Outcome.passed(
        f"20 signals decided in {figures['all_decided_ms']} ms ({dict(statuses)}"
        + (f", reasons {dict(reasons)}" if reasons else "")
        + "); every service still ready",
        **figures,
    )
