"""Pipeline: signal -> order -> fill -> position through a real exec-risk worker and Redis.

Runs the real parts on this machine: a Redis server, a fresh SQLite database, one exec-risk
worker (prefork, 2 processes) trading on the paper exchange (``QT_EXCHANGE=paper``), the outbox
relay loop (``manage.py relay_events``, as ``make run`` starts it), a fresh bar of each symbol
recorded so that quotes exist, and the global risk limits raised so that nothing is denied.
Signals take the API's path from this process: ``submit_signal`` (the row and its
``signal.generated`` in the outbox, one transaction), then the outbox relay's fast path
(the event to the log, ``process_signal`` to exec-risk); every event of the worker's goes
through the outbox too. Small quantities, BUY then SELL of each
symbol in turn, so positions stay small. The baseline, measured in the same run on the same
worker, is the bare Celery task ``ping_service`` sent to the exec_risk queue the same way.

1. Latency: signals one after another, from just before ``submit_signal`` to the moment this
   process reads the signal's ``position.*`` event (published once the fill and the position
   change have committed) with ``XREAD BLOCK``; alternated with bare round trips
   (``ping_service.apply_async(queue="exec_risk").get()``), ``--pause`` apart (30 ms: the
   worker's work after a signal's position, the automatic risk state, the task's result and
   metrics, the dashboard's send, is over by then, so neither measure pays for the other's
   aftermath; ``--pause 0`` runs them back to back). Goals: p50 within 4x the bare
   round trip, p99 under 25 ms. Also the CPU time each costs the worker, Redis, the relay loop
   and this process (``/proc/<pid>/schedstat``), which a busy machine does not stretch.
2. Burst: ``--burst`` signals created, then all enqueued at once: the time until every one is
   decided (``Signal.updated_at``), none lost, none with two orders, positions equal to the sum of
   their fills; beside as many pings enqueued at once (until the last ``answered_at``).
3. Sustained: signals at a steady offered rate for ``--seconds``: signals decided per second
   within the window, latency from the row's ``created_at`` to its ``updated_at``, zero loss once
   drained; beside pings at the same rate for ``--baseline-seconds`` (latency from the send to
   the worker's ``answered_at``).
4. Memory: VmRSS of the worker's main and pool processes and of this process, from
   ``/proc/<pid>/status`` every ``--sample`` seconds during 3: first, last, max, flat if it grew
   less than 10%.

    .venv/bin/python bench/pipeline.py [--signals 200] [--burst 1000] [--seconds 60]
        [--rate 20] [--baseline-seconds 20] [--sample 3] [--burst-timeout 120] [--drain 60]
        [--latency-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchkit import children, percentile, raise_limits, rss_kb, start_platform  # noqa: E402

GOAL_RATIO = 4.0
GOAL_P99_MS = 25.0
GOAL_MEMORY_GROWTH = 0.10
# Small orders over the paper exchange's minimum notional (10 USDT for BTC and ETH, 5 for SOL).
QUANTITIES = {
    "BTCUSDT": Decimal("0.00015"),
    "ETHUSDT": Decimal("0.004"),
    "SOLUSDT": Decimal("0.08"),
}
UNDECIDED = ("pending", "submitted")


def describe(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    if not ms:
        return f"{name:<46} n=0"
    return (
        f"{name:<46} n={len(ms):<5} p50 {statistics.median(ms):7.2f} ms   "
        f"p95 {percentile(ms, 0.95):7.2f} ms   p99 {percentile(ms, 0.99):7.2f} ms"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def setup_platform(var: Path):
    """A Redis server, a migrated SQLite database, fresh bars and raised limits; returns the
    server (to stop) and the account."""
    redis_server = start_platform(var, QT_EXCHANGE="paper")

    from trading.marketdata.klines import load_bundled_bars
    from trading.marketdata.prices import record_bars
    from trading.risk.services import get_account

    record_bars([load_bundled_bars(symbol)[-1] for symbol in QUANTITIES])
    raise_limits(allowed_symbols=",".join(QUANTITIES))
    return redis_server, get_account()


# --- sending --------------------------------------------------------------------------------


class Signals:
    """Sends signals the API's way, BUY then SELL of each symbol in turn."""

    def __init__(self, account) -> None:
        self.account = account
        self.count = 0

    def send(self, source: str):
        """The API's path: the intake saves the signal and its event, and the outbox relay
        publishes the event and hands the signal to exec-risk once it commits."""
        return self._submit(source, hand_off=True)

    def create(self, source: str):
        """The row and its event only; the caller sends ``process_signal`` itself."""
        return self._submit(source, hand_off=False)

    def _submit(self, source: str, *, hand_off: bool):
        from trading.execution.intake import SignalRequest, submit_signal

        request = SignalRequest(**self.next_fields())
        return submit_signal(
            self.account, request, producer="web", source=source, hand_off=hand_off
        )

    def next_fields(self) -> dict:
        symbols = list(QUANTITIES)
        symbol = symbols[self.count % len(symbols)]
        side = "BUY" if (self.count // len(symbols)) % 2 == 0 else "SELL"
        self.count += 1
        return {
            "symbol": symbol,
            "side": side,
            "confidence": Decimal("0.9"),
            "quantity": QUANTITIES[symbol],
            "leverage": 1,
        }


def ping():
    from trading.observability.tasks import ping_service

    return ping_service.apply_async(queue="exec_risk")


def send_steadily(rate: float, seconds: float, send) -> tuple[int, float]:
    """Calls ``send(i)`` at ``rate`` a second for ``seconds``; returns the calls made and the
    seconds they took (the sender may fall behind when one call takes longer than 1/rate)."""
    started = time.perf_counter()
    sent = 0
    while True:
        due = started + sent / rate
        if due >= started + seconds:
            break
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        send(sent)
        sent += 1
    return sent, time.perf_counter() - started


def ping_answers(results: list, timeout: float) -> list[float]:
    """The workers' ``answered_at`` of each ping, once all have answered."""
    from celery.result import ResultSet

    return [answer["answered_at"] for answer in ResultSet(results).get(timeout=timeout)]


# --- reading the outcome --------------------------------------------------------------------


def last_stream_id(client) -> str:
    from trading.events.log import events_stream

    newest = client.xrevrange(events_stream(), count=1)
    return newest[0][0] if newest else "0-0"


def read_until_position(client, after: str, correlation: str, timeout: float):
    """Reads the event log after ``after`` until the ``position.*`` event that follows the
    ``order.filled`` of ``correlation`` (a position's events carry the correlation id of the
    signal that opened it; a fill's are published together with the position's, in one
    MULTI/EXEC); returns the last id read, the wall-clock time it was read, and the ts of each
    event type of the signal seen on the way."""
    from trading.events.envelope import Event
    from trading.events.log import events_stream

    stream = events_stream()
    stamps: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.xread({stream: after}, count=100, block=1000)
        read_at = time.time()
        for _stream, entries in answer or []:
            for stream_id, fields in entries:
                after = stream_id
                kind = fields.get("type", "")
                filled = "order.filled" in stamps
                if fields.get("correlation_id") != correlation and not (
                    filled and kind.startswith("position.")
                ):
                    continue
                event = Event.from_fields(fields)
                stamps.setdefault(event.type, event.ts.timestamp())
                if filled and kind.startswith("position."):
                    return after, read_at, stamps
    raise RuntimeError(f"no position event for {correlation} within {timeout:.0f}s")


def wait_decided(source: str, timeout: float) -> int:
    """Polls the database until no signal of ``source`` is undecided or the time is up; returns
    how many are still undecided."""
    from trading.models import Signal

    deadline = time.monotonic() + timeout
    while True:
        left = Signal.objects.filter(source=source, status__in=UNDECIDED).count()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.25)


def outcome(source: str) -> dict:
    """What became of the signals of ``source``: statuses, orders per signal, decision times."""
    from django.db.models import Count

    from trading.models import Order, Signal

    rows = list(
        Signal.objects.filter(source=source).values_list("status", "created_at", "updated_at")
    )
    doubles = (
        Order.objects.filter(signal__source=source)
        .values("signal")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    without_order = (
        Signal.objects.filter(source=source)
        .exclude(status="denied")
        .annotate(n=Count("orders"))
        .filter(n=0)
        .count()
    )
    decided = [(c.timestamp(), u.timestamp()) for s, c, u in rows if s not in UNDECIDED]
    return {
        "total": len(rows),
        "statuses": Counter(s for s, _, _ in rows),
        "undecided": sum(1 for s, _, _ in rows if s in UNDECIDED),
        "doubles": doubles,
        "without_order": without_order,
        "decided": decided,
    }


def ledger_mismatches(account) -> list[str]:
    """Symbols whose open position is not the signed sum of every fill in that symbol."""
    from trading.models import Fill, Position

    mismatches = []
    for symbol in QUANTITIES:
        net = Decimal(0)
        for side, quantity in Fill.objects.filter(
            order__account=account, symbol=symbol
        ).values_list("side", "quantity"):
            net += quantity if side == "BUY" else -quantity
        held = (
            Position.objects.filter(account=account, symbol=symbol, status="open")
            .values_list("quantity", flat=True)
            .first()
        ) or Decimal(0)
        if net != held:
            mismatches.append(f"{symbol}: fills {net}, position {held}")
    return mismatches


def fill_count() -> int:
    from trading.models import Fill

    return Fill.objects.count()


def statuses_text(statuses: Counter) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(statuses.items()))


# --- memory ---------------------------------------------------------------------------------


class MemorySampler(threading.Thread):
    """VmRSS of the worker's main process, its pool processes and this process, every
    ``interval`` seconds until stopped."""

    def __init__(self, worker_pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.worker_pid = worker_pid
        self.interval = interval
        self.samples: dict[str, list[int]] = {}
        self.halt = threading.Event()

    def sample(self) -> None:
        targets = [(f"worker main ({self.worker_pid})", self.worker_pid)]
        targets += [(f"worker pool ({pid})", pid) for pid in children(self.worker_pid)]
        targets.append((f"bench process ({os.getpid()})", os.getpid()))
        for label, pid in targets:
            kb = rss_kb(pid)
            if kb is not None:
                self.samples.setdefault(label, []).append(kb)

    def run(self) -> None:
        while True:
            self.sample()
            if self.halt.wait(self.interval):
                break
        self.sample()

    def stop(self) -> None:
        self.halt.set()
        self.join()


# --- the parts ------------------------------------------------------------------------------


def cpu_ns(pids: dict[str, list[int]]) -> Counter:
    """CPU time each part's processes' threads have used, in ns
    (``/proc/<pid>/task/*/schedstat``): what a round trip costs whatever else the machine is
    doing."""
    used: Counter = Counter()
    for part, members in pids.items():
        for pid in members:
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    used[part] += int((task / "schedstat").read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    pass
    return used


def latency_part(
    signals: Signals, count: int, pids: dict[str, list[int]], pause: float = 0.0
) -> bool:
    from trading.store import redis_client

    client = redis_client()
    after = last_stream_id(client)
    round_trips, latencies = [], []
    cpu: dict[str, Counter] = {"ping": Counter(), "signal": Counter()}
    stages: dict[str, list[float]] = {}
    # Each one's CPU runs until the next one starts: what its aftermath costs (in the pause, when
    # there is one) is its own.
    time.sleep(pause)
    for _ in range(count):
        before = cpu_ns(pids)
        started = time.perf_counter()
        ping().get(timeout=10)
        round_trips.append(time.perf_counter() - started)
        time.sleep(pause)
        between = cpu_ns(pids)
        cpu["ping"].update(between - before)

        created = time.time()
        signal = signals.send("bench-latency")
        sent = time.time()
        after, read_at, stamps = read_until_position(
            client, after, str(signal.correlation_id), timeout=30
        )
        latencies.append(read_at - created)
        time.sleep(pause)
        cpu["signal"].update(cpu_ns(pids) - between)
        position = next(ts for kind, ts in stamps.items() if kind.startswith("position."))
        steps = {
            "submit_signal + relay + hand-off (this process)": sent - created,
            "-> order.requested (broker, pick-up, risk)": stamps["order.requested"] - sent,
            "-> order.filled (paper exchange, fill)": stamps["order.filled"]
            - stamps["order.requested"],
            "-> position.* (position moved)": position - stamps["order.filled"],
            "-> event read here (commit, publish, read)": read_at - position,
        }
        for name, seconds in steps.items():
            stages.setdefault(name, []).append(seconds)

    result = outcome("bench-latency")
    print(f"1. signal -> fill -> position, {count} signals one after another:")
    print(describe("bare Celery round trip (baseline)", round_trips))
    print(describe("signal created -> position event read", latencies))
    ping_cpu = cpu["ping"].total() / count / 1e6
    signal_cpu = cpu["signal"].total() / count / 1e6
    print(
        f"   CPU per round trip (worker, Redis, relay loop, this process): bare ping "
        f"{ping_cpu:.2f} ms, signal {signal_cpu:.2f} ms ({signal_cpu / ping_cpu:.1f}x)"
    )
    for kind, used in cpu.items():
        parts = ", ".join(f"{part} {ns / count / 1e6:.2f}" for part, ns in used.items())
        print(f"     {kind}: {parts} ms")
    print("   where the time goes (medians; the event ts are the worker's clock):")
    for name, seconds in stages.items():
        print(f"   {name:<46} {statistics.median(seconds) * 1000:7.2f} ms")
    ratio = statistics.median(latencies) / statistics.median(round_trips)
    p99 = percentile(latencies, 0.99) * 1000
    print(f"   statuses: {statuses_text(result['statuses'])}")
    print(
        f"goal: p50 within {GOAL_RATIO:g}x the bare round trip -> {verdict(ratio <= GOAL_RATIO)} "
        f"({ratio:.1f}x); p99 under {GOAL_P99_MS:g} ms -> {verdict(p99 < GOAL_P99_MS)} "
        f"({p99:.1f} ms)"
    )
    return ratio <= GOAL_RATIO and p99 < GOAL_P99_MS


def burst_part(signals: Signals, account, count: int, timeout: float) -> bool:
    from trading.execution.tasks import process_signal

    # Baseline: as many bare tasks enqueued at once, until the last has run.
    started = time.time()
    results = [ping() for _ in range(count)]
    enqueued = time.time() - started
    answered = ping_answers(results, timeout)
    pings_done = max(answered) - started

    created_at = time.perf_counter()
    batch = [signals.create("bench-burst") for _ in range(count)]
    creating = time.perf_counter() - created_at
    started = time.time()
    for signal in batch:
        process_signal.delay(str(signal.id))
    sending = time.time() - started
    wait_decided("bench-burst", timeout)
    result = outcome("bench-burst")
    done = max((decided for _, decided in result["decided"]), default=started) - started
    mismatches = ledger_mismatches(account)

    print(f"2. burst of {count}, enqueued at once:")
    print(
        f"   bare ping_service (baseline): enqueued in {enqueued:.2f} s, all run after "
        f"{pings_done:.2f} s ({count / pings_done:,.0f}/s)"
    )
    print(
        f"   signals: {creating:.2f} s to create the rows ({count / creating:,.0f}/s), enqueued "
        f"in {sending:.2f} s, all decided after {done:.2f} s ({count / done:,.0f}/s, "
        f"{done / pings_done:.1f}x the baseline)"
    )
    print(
        f"   statuses: {statuses_text(result['statuses'])}; undecided {result['undecided']}; "
        f"with two orders {result['doubles']}; approved without an order "
        f"{result['without_order']}; positions = sum of fills: "
        f"{'yes' if not mismatches else 'NO ' + '; '.join(mismatches)}"
    )
    ok = (
        result["total"] == count
        and result["undecided"] == 0
        and result["doubles"] == 0
        and result["without_order"] == 0
        and not mismatches
    )
    print(f"goal: all {count} decided, none lost, none with two orders -> {verdict(ok)}")
    return ok


def sustained_part(signals: Signals, account, args, worker_pid: int) -> tuple[bool, bool]:
    # Baseline: bare tasks at the same offered rate.
    pings: list[tuple[float, object]] = []
    start_wall = time.time()
    sent, ping_took = send_steadily(
        args.rate, args.baseline_seconds, lambda _: pings.append((time.time(), ping()))
    )
    answered = ping_answers([r for _, r in pings], 60)
    window_end = start_wall + args.baseline_seconds
    ping_rate = sum(1 for a in answered if a <= window_end) / args.baseline_seconds
    ping_latency = [a - s for (s, _), a in zip(pings, answered, strict=True)]

    sampler = MemorySampler(worker_pid, args.sample)
    sampler.start()
    start_wall = time.time()
    offered, took = send_steadily(args.rate, args.seconds, lambda _: signals.send("bench-steady"))
    window_end = start_wall + args.seconds
    left = wait_decided("bench-steady", args.drain)
    sampler.stop()
    result = outcome("bench-steady")
    decided = result["decided"]
    in_window = [d for _, d in decided if d <= window_end]
    late = max((d for _, d in decided), default=window_end) - window_end
    slice_seconds = min(10.0, args.seconds / 2)
    first = sum(1 for d in in_window if d <= start_wall + slice_seconds) / slice_seconds
    last = sum(1 for d in in_window if d > window_end - slice_seconds) / slice_seconds
    mismatches = ledger_mismatches(account)

    print(f"3. sustained, offered {args.rate:g}/s:")
    print(
        f"   bare ping_service (baseline): {sent} sent in {ping_took:.1f} s, "
        f"{ping_rate:,.1f}/s run within the {args.baseline_seconds:g} s window"
    )
    print(
        f"   signals: {offered} sent in {took:.1f} s ({offered / took:,.1f}/s offered), "
        f"{len(in_window) / args.seconds:,.1f}/s decided within the {args.seconds:g} s window "
        f"(first {slice_seconds:g} s {first:,.1f}/s, last {slice_seconds:g} s {last:,.1f}/s); "
        f"the last decided {max(late, 0):.2f} s after the window closed"
    )
    print(describe("   bare ping: sent -> run (baseline)", ping_latency))
    print(describe("   signal: created -> decided", [d - c for c, d in decided]))
    early = [d - c for c, d in decided if c <= start_wall + slice_seconds]
    recent = [d - c for c, d in decided if c > window_end - slice_seconds]
    if early and recent:
        print(
            f"   signal p50 over the first {slice_seconds:g} s "
            f"{statistics.median(early) * 1000:.2f} ms, over the last {slice_seconds:g} s "
            f"{statistics.median(recent) * 1000:.2f} ms; fills in the book at the end "
            f"{fill_count()}"
        )
    print(
        f"   statuses: {statuses_text(result['statuses'])}; undecided after the drain {left}; "
        f"with two orders {result['doubles']}; positions = sum of fills: "
        f"{'yes' if not mismatches else 'NO ' + '; '.join(mismatches)}"
    )
    lossless = result["undecided"] == 0 and result["doubles"] == 0 and not mismatches
    kept_up = len(in_window) >= 0.95 * offered
    print(
        f"goal: zero loss -> {verdict(lossless)}; kept up with the offered rate (95% decided "
        f"within the window) -> {'yes' if kept_up else 'no'}"
    )

    print()
    print(f"4. memory (VmRSS) every {args.sample:g} s during the sustained run:")
    flat = True
    for label, values in sampler.samples.items():
        growth = values[-1] / values[0] - 1
        flat_here = growth < GOAL_MEMORY_GROWTH
        flat = flat and flat_here
        print(
            f"   {label:<28} n={len(values):<3} first {values[0] / 1024:6.1f} MB   "
            f"last {values[-1] / 1024:6.1f} MB   max {max(values) / 1024:6.1f} MB   "
            f"growth {growth:+6.1%} -> {'flat' if flat_here else 'NOT flat'}"
        )
    print(f"goal: flat (growth under {GOAL_MEMORY_GROWTH:.0%}) -> {verdict(flat)}")
    return lossless, flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=200, help="signals one after another")
    parser.add_argument("--burst", type=int, default=1000, help="signals enqueued at once")
    parser.add_argument("--burst-timeout", type=float, default=120, help="seconds to decide")
    parser.add_argument("--seconds", type=float, default=60, help="sustained run, seconds")
    parser.add_argument("--rate", type=float, default=20, help="offered signals per second")
    parser.add_argument(
        "--baseline-seconds", type=float, default=20, help="pings at the same rate, seconds"
    )
    parser.add_argument("--drain", type=float, default=60, help="seconds to wait for the rest")
    parser.add_argument("--sample", type=float, default=3, help="seconds between memory samples")
    parser.add_argument(
        "--latency-only", action="store_true", help="part 1 only: a short run for the ratio"
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.03,
        help="part 1: seconds between one round trip and the next (0: back to back)",
    )
    args = parser.parse_args()

    began = time.monotonic()
    var = Path(tempfile.mkdtemp(prefix="qt-bench-pipeline-"))
    redis_server, account = setup_platform(var)
    from tests.support.processes import Process, celery_worker, wait_for

    worker = celery_worker(
        "exec_risk@bench", "exec_risk", dict(os.environ), var / "log", concurrency=2
    ).start()
    relay = Process(
        "relay", [sys.executable, "manage.py", "relay_events"], dict(os.environ), var / "log"
    ).start()
    try:
        wait_for(lambda: ping().get(timeout=10), 60, "exec-risk worker")
        signals = Signals(account)
        # Warm-up, not measured: both pool processes load their caches and connections.
        for _ in range(20):
            ping().get(timeout=10)
        for _ in range(12):
            signals.send("bench-warmup")
        if wait_decided("bench-warmup", 30):
            raise RuntimeError(f"warm-up signals were not decided; see {worker.log_path}")

        print(
            f"pipeline on this machine ({os.cpu_count()} cores), exec-risk worker prefork x2, "
            "paper exchange, the outbox relay loop, SQLite, a local Redis"
        )
        pids = {
            "worker main": [worker.pid],
            "pool": children(worker.pid),
            "Redis": [redis_server.process.pid],
            "relay loop": [relay.pid],
            "this process": [os.getpid()],
        }
        results = [latency_part(signals, args.signals, pids, args.pause)]
        print()
        if not args.latency_only:
            results.append(burst_part(signals, account, args.burst, args.burst_timeout))
            print()
            results.extend(sustained_part(signals, account, args, worker.pid))
            print()
        print(
            f"{sum(results)} of {len(results)} parts met their goals; "
            f"whole run {time.monotonic() - began:.0f} s"
        )
    finally:
        relay.stop()
        worker.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
