"""Memory over a long replay: the resident size of every platform process stays flat.

Runs the real parts on this machine: a Redis server, a fresh SQLite database, the three service
workers as ``make run`` starts them (``celery -A controlpanel worker -Q <queue>``, prefork with two
pool processes each) and the market feed (``manage.py run_feed``) replaying the bundled klines at
``--bar-seconds`` per step (0.5 s: a 5-minute bar of each symbol 600 times faster than live). A
model is trained on three days of history and the global minimum confidence is lowered to 0.5
(the model is rarely 70 % sure), other limits raised, so that every bar becomes an ai signal,
exec-risk trades nearly every one on the paper exchange, and analytics reads every event (and
records the positions that close, few: the model rarely changes its mind about a symbol): all
three services work all the time. Beat is not run (the drains are asked for by the feed and by
exec-risk, as they are between beats).

Every ``--sample`` seconds the bench reads ``VmRSS`` from ``/proc/<pid>/status`` of each worker's
main process and of each of its pool processes, of the feed, and of the baseline below. The first
``--warmup`` minutes are not judged: imports finish, the model is loaded, caches and connections
fill, pymalloc's arenas reach their working size. From then on, per process: RSS at the start
(median of the first 30 s of samples), at the end (median of the last 30 s), the growth in MiB
and %, and the least-squares slope in MiB per hour over every judged sample and over the second
half of them (a leak keeps its slope; a cache that fills up to its bound, such as SQLite's page
cache of a connection kept across tasks, flattens). The samples are written to a CSV.

Baseline, in the same run: a bare Celery worker (same application, settings and pool, its own
queue) sent the trivial ``ping_service`` task at exec-risk's pace, four a step (three signals and
a bar drain). Not an idle worker: one that does nothing allocates nothing, so its flat line says
nothing about what Celery, kombu, the Redis result backend and the allocator do to a process
that handles a task a few times a second. The baseline's growth and slope are that floor, and
the noise of the measurement: a service worker is flat when it grows no more than a bare worker
under the same task rate would, and the verdict's threshold sits above that floor.

The bar store (``MarketBar``) keeps ``--retention-days`` of bars behind the newest (the
feed purges older ones every ``PURGE_EVERY_STEPS`` steps; 1 day here instead of the default 90,
so that a ten-minute replay of four days of bars outgrows it): its row count is sampled with
the activity, and its highest count is held to the bound that retention sets, the bars of
``--retention-days`` plus the steps between two purges, per symbol. The bundled seed is purged
like any bar once the replay is a retention ahead of it.

Verdict per process: flat if its growth from start to end stays under ``FLAT_GROWTH`` (5 %).
Beside it, the trend: "rising" when the slope of the second half is above ``RISING_MIB_PER_HOUR``
and above every baseline process's, else "level". A 5 % bound over ten minutes lets a slow leak
through (3 MiB/h is 0.5 % of 100 MiB in ten minutes); the trend says which processes to watch in
a longer run (``--minutes 30``). Redis is shown for information only: it holds the event log,
which grows by design up to ``EVENT_LOG_MAXLEN`` entries.

The machine may be shared (two cores, others' tests running): the figures that matter are the
slopes beside the baseline's, which shares the same conditions.

    .venv/bin/python bench/memory_replay.py [--minutes 10] [--warmup 1] [--bar-seconds 0.5]
        [--sample 5] [--retention-days 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchkit import children, percentile, raise_limits, rss_kb, start_platform  # noqa: E402

FLAT_GROWTH = 0.05
RISING_MIB_PER_HOUR = 2.0
EDGE_SECONDS = 30  # the start and end RSS are medians over this long
MIB = 1024  # VmRSS is in kB
SERVICES = (("ai", "ai"), ("exec-risk", "exec_risk"), ("analytics", "analytics"))
BASELINE_QUEUE = "bench_baseline"
PINGS_PER_STEP = 4


# --- reading memory -------------------------------------------------------------------------


@dataclass
class Series:
    """One process's samples: (seconds since the replay began, RSS in kB)."""

    label: str
    pid: int
    judged: bool = True
    points: list[tuple[float, int]] = field(default_factory=list)


class Sampler(threading.Thread):
    """RSS of each process (a main process and its pool processes) every ``interval`` seconds."""

    def __init__(self, mains: dict[str, int], extra: dict[str, int], interval: float) -> None:
        super().__init__(daemon=True)
        self.mains = mains  # label -> pid, pool processes found under each
        self.extra = extra  # label -> pid, sampled for information
        self.interval = interval
        self.began = time.monotonic()
        self.series: dict[int, Series] = {}
        self.halt = threading.Event()

    def sample(self) -> None:
        now = time.monotonic() - self.began
        targets = []
        for label, pid in self.mains.items():
            targets.append((f"{label} main", pid, True))
            for number, child in enumerate(children(pid), 1):
                targets.append((f"{label} pool {number}", child, True))
        targets += [(label, pid, False) for label, pid in self.extra.items()]
        for label, pid, judged in targets:
            kb = rss_kb(pid)
            if kb is None:
                continue
            series = self.series.setdefault(pid, Series(label, pid, judged))
            series.points.append((now, kb))

    def run(self) -> None:
        while True:
            self.sample()
            if self.halt.wait(self.interval):
                break

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.sample()


@dataclass(frozen=True)
class Growth:
    start_mib: float
    end_mib: float
    slope_mib_per_hour: float
    late_slope_mib_per_hour: float  # over the second half: a leak keeps its slope, a cache fills
    samples: int

    @property
    def mib(self) -> float:
        return self.end_mib - self.start_mib

    @property
    def share(self) -> float:
        return self.mib / self.start_mib


def growth(points: list[tuple[float, int]], since: float) -> Growth | None:
    """The growth of a series after ``since`` seconds: medians of its first and last
    ``EDGE_SECONDS``, and the least-squares slope; None with too few samples to say."""
    judged = [(t, kb / MIB) for t, kb in points if t >= since]
    if len(judged) < 4 or judged[-1][0] - judged[0][0] < 2 * EDGE_SECONDS:
        return None
    first, last = judged[0][0], judged[-1][0]
    start = statistics.median(m for t, m in judged if t <= first + EDGE_SECONDS)
    end = statistics.median(m for t, m in judged if t >= last - EDGE_SECONDS)
    late = [(t, m) for t, m in judged if t >= (first + last) / 2]
    return Growth(start, end, _slope(judged) * 3600, _slope(late) * 3600, len(judged))


def _slope(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of ``points`` (0 for a constant series)."""
    if len(points) < 2:
        return 0.0
    slope, _ = statistics.linear_regression([t for t, _ in points], [m for _, m in points])
    return slope


# --- the platform ---------------------------------------------------------------------------


def setup_platform(var: Path):
    """Redis, a migrated database, a model, limits that let the ai's signals trade; returns the
    Redis server (to stop)."""
    redis_server = start_platform(var, QT_EXCHANGE="paper")

    from trading.ai.services import store_model, training_bars
    from trading.ai.training import train_walk_forward

    store_model(train_walk_forward(training_bars(days=3)), "bench")
    raise_limits(min_confidence=Decimal("0.5"))
    return redis_server


def ping(queue: str):
    from trading.observability.tasks import ping_service

    return ping_service.apply_async(queue=queue, expires=60)


class Pinger(threading.Thread):
    """``PINGS_PER_STEP`` pings to the baseline worker every step of the replay."""

    def __init__(self, bar_seconds: float) -> None:
        super().__init__(daemon=True)
        self.every = max(bar_seconds, 0.05) / PINGS_PER_STEP
        self.halt = threading.Event()
        self.sent = 0

    def run(self) -> None:
        while not self.halt.wait(self.every):
            ping(BASELINE_QUEUE).forget()
            self.sent += 1

    def stop(self) -> None:
        self.halt.set()
        self.join()


def activity() -> dict[str, int]:
    """What the services did so far, to show that they worked."""
    from django.db.models import Count

    from trading.events.log import events_stream
    from trading.models import (
        Fill,
        LearningRecord,
        MarketBar,
        Position,
        ProcessedEvent,
        Signal,
    )
    from trading.store import redis_client

    by_status = dict(
        Signal.objects.filter(source="ai").values_list("status").annotate(n=Count("id"))
    )
    client = redis_client()
    lag = {group["name"]: group.get("lag") or 0 for group in client.xinfo_groups(events_stream())}
    return {
        "bars handled by ai": ProcessedEvent.objects.filter(consumer="ai").count(),
        "ai signals": sum(by_status.values()),
        "filled": by_status.get("filled", 0),
        "denied": by_status.get("denied", 0),
        "undecided": by_status.get("pending", 0) + by_status.get("submitted", 0),
        "fills": Fill.objects.count(),
        "closed positions": Position.objects.filter(status="closed").count(),
        "learning records": LearningRecord.objects.count(),
        "events logged": client.xlen(events_stream()),
        "stored bars": MarketBar.objects.count(),
        "ai lag": lag.get("ai", 0),
        "analytics lag": lag.get("analytics", 0),
    }


def describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {value}" for name, value in counts.items())


# --- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="replay, warm-up included")
    parser.add_argument("--warmup", type=float, default=1, help="minutes not judged")
    parser.add_argument("--bar-seconds", type=float, default=0.5, help="replay pace, s a step")
    parser.add_argument("--sample", type=float, default=5, help="seconds between samples")
    parser.add_argument(
        "--retention-days", type=float, default=1.0, help="the bar store's retention, days"
    )
    args = parser.parse_args()
    if args.warmup >= args.minutes:
        parser.error("--warmup must be shorter than --minutes")

    began = time.monotonic()
    var = Path(tempfile.mkdtemp(prefix="qt-bench-memory-"))
    os.environ["QT_BAR_RETENTION_DAYS"] = str(args.retention_days)
    redis_server = setup_platform(var)
    from tests.support.processes import Process, celery_worker, wait_for
    from trading.store import redis_client

    env = dict(os.environ)
    logs = var / "log"
    workers = {
        service: celery_worker(f"{queue}@bench", queue, env, logs, concurrency=2).start()
        for service, queue in SERVICES
    }
    workers["baseline"] = celery_worker(
        "baseline@bench", BASELINE_QUEUE, env, logs, concurrency=2
    ).start()
    command = [
        sys.executable, "manage.py", "run_feed", "--source", "replay",
        "--bar-seconds", str(args.bar_seconds), "--at-end", "loop",
    ]  # fmt: skip
    feed = Process("feed", command, env, logs)
    pinger = Pinger(args.bar_seconds)
    sampler = None
    try:
        queues = dict(SERVICES) | {"baseline": BASELINE_QUEUE}
        for service, worker in workers.items():
            wait_for(
                lambda w=worker, q=queues[service]: ping(q).get(timeout=30) or not w.alive(),
                90,
                f"the {service} worker",
            )
            if not worker.alive():
                raise RuntimeError(f"the {service} worker exited; see {worker.log_path}")
        feed.start()
        pinger.start()
        redis_pid = int(redis_client().info("server")["process_id"])
        sampler = Sampler(
            {service: worker.pid for service, worker in workers.items()} | {"feed": feed.pid},
            {"redis (the event log: no verdict)": redis_pid},
            args.sample,
        )
        sampler.start()
        print(
            f"memory over a replay on this machine ({os.cpu_count()} cores, shared), "
            f"{args.minutes:g} min at {args.bar_seconds:g} s a step of 3 bars, "
            f"first {args.warmup:g} min not judged, RSS every {args.sample:g} s; "
            f"start-up took {time.monotonic() - began:.0f} s",
            flush=True,
        )
        deadline = time.monotonic() + args.minutes * 60
        stored: list[int] = []
        next_report = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
            if time.monotonic() - sampler.began >= args.warmup * 60:
                stored.append(activity()["stored bars"])
            if time.monotonic() < next_report and time.monotonic() < deadline:
                continue
            next_report += 60
            if not feed.alive():
                raise RuntimeError(f"the feed exited; see {feed.log_path}")
            dead = [s for s, w in workers.items() if not w.alive()]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited; see {logs}")
            minute = (time.monotonic() - sampler.began) / 60
            print(f"  {minute:4.1f} min: {describe(activity())}", flush=True)
        feed.stop()
        pinger.stop()
        sampler.stop()
        final = activity()
        stored.append(final["stored bars"])
    finally:
        if pinger.is_alive():
            pinger.stop()
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        feed.stop()
        for worker in workers.values():
            worker.stop()
        redis_server.stop()

    report(sampler, args, final, pinger.sent)
    report_bar_store(stored, args.retention_days)
    samples = var / "rss.csv"
    with samples.open("w") as out:
        out.write("process,pid,seconds,rss_kb\n")
        for series in sampler.series.values():
            out.writelines(f"{series.label},{series.pid},{t:.1f},{kb}\n" for t, kb in series.points)
    print(f"samples in {samples}")
    print(f"whole run {time.monotonic() - began:.0f} s; logs in {logs}")


def report(sampler: Sampler, args, final: dict[str, int], pings: int) -> None:
    since = args.warmup * 60
    print()
    print(f"what the platform did: {describe(final)}; baseline pings {pings}")
    print()
    growths = [(series, growth(series.points, since)) for series in sampler.series.values()]
    baseline_late = [
        g.late_slope_mib_per_hour
        for series, g in growths
        if g is not None and series.label.startswith("baseline")
    ]
    rising_above = max([RISING_MIB_PER_HOUR, *baseline_late])
    header = (
        f"{'process':<36} {'pid':>7} {'start MiB':>10} {'end MiB':>9} {'growth MiB':>11} "
        f"{'growth %':>9} {'slope MiB/h':>12} {'2nd half':>9}  verdict"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    slopes: dict[str, list[float]] = {"service": [], "baseline": []}
    for series, g in growths:
        if g is None:
            print(f"{series.label:<36} {series.pid:>7}  too few samples after the warm-up")
            continue
        if series.judged:
            flat = g.share < FLAT_GROWTH
            verdicts.append(flat)
            trend = "rising" if g.late_slope_mib_per_hour > rising_above else "level"
            verdict = f"{'flat' if flat else 'NOT flat'}, {trend}"
            kind = "baseline" if series.label.startswith("baseline") else "service"
            slopes[kind].append(g.slope_mib_per_hour)
        else:
            verdict = "-"
        print(
            f"{series.label:<36} {series.pid:>7} {g.start_mib:10.1f} {g.end_mib:9.1f} "
            f"{g.mib:+11.2f} {g.share:+9.1%} {g.slope_mib_per_hour:+12.2f} "
            f"{g.late_slope_mib_per_hour:+9.2f}  {verdict}"
        )
    print()
    for kind, values in slopes.items():
        if values:
            print(
                f"slope, {kind} processes: median {statistics.median(values):+.2f} MiB/h, "
                f"highest {percentile(values, 1.0):+.2f} MiB/h"
            )
    print(
        f"flat: growth under {FLAT_GROWTH:.0%} from start to end -> "
        f"{sum(verdicts)} of {len(verdicts)} processes flat; rising: a second-half slope "
        f"above {rising_above:.2f} MiB/h ({RISING_MIB_PER_HOUR:g} MiB/h or the baseline's)"
    )


def report_bar_store(stored: list[int], retention_days: float) -> None:
    from trading.marketdata.feed import PURGE_EVERY_STEPS
    from trading.marketdata.klines import bundled_symbols

    symbols = len(bundled_symbols())
    per_day = 24 * 60 // 5  # 5-minute bars
    bound = symbols * (int(retention_days * per_day) + 1 + PURGE_EVERY_STEPS)
    print(
        f"bar store after the warm-up: {stored[0]:,} rows at first, {stored[-1]:,} at the end, "
        f"at most {max(stored):,}; retention {retention_days:g} days bounds it at {bound:,} "
        f"({symbols} symbols x ({int(retention_days * per_day)} bars + 1 + "
        f"{PURGE_EVERY_STEPS} steps between purges)) -> "
        f"{'within its retention' if max(stored) <= bound else 'NOT within its retention'}"
    )


if __name__ == "__main__":
    main()
