"""Readiness under a burst: 1000 concurrent requests to /ready and to /services/exec-risk/ready.

Starts the platform's real parts on this machine: a Redis server, a fresh SQLite database with
the symbol rules and fresh bars (so that exec-risk is ready), the exec-risk Celery worker (2 pool
processes, as ``make run``), and the web server as ``make run`` starts it (gunicorn,
``deploy/gunicorn.conf.py``: 2 sync workers serving ``controlpanel.wsgi``). The baseline is a
second gunicorn started with the same command and settings except the URLconf
(``bench/baseline_settings.py``): ``GET /ok`` answers ``HttpResponse("ok")`` through the same
WSGI application and the same middleware stack, touching neither Redis nor the database. A third
gunicorn computes every answer (``QT_HEALTH_CACHE_SECONDS=0``): what the burst costs without
the reuse of answers.

Load comes from hey (Debian's ``hey``): ``hey -n 1000 -c 1000``, a thousand connections opened
at once with one request each, after a small warm-up (``-n 100 -c 10``). hey counts as errors
the requests that failed to connect, were reset or took longer than its 20 s timeout; here an
answer other than 200 is an error too (a 503 from a ready view means "not ready"). Latency
percentiles are hey's, over the requests that got an answer. Each round bursts the three URLs in
turn, the baseline first.
Goal (issue 7): 1000 concurrent /ready requests with zero errors; the same is asked of
/services/exec-risk/ready here.

    .venv/bin/python bench/ready_burst.py [--requests 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchkit import start_platform  # noqa: E402

BASELINE_URL = "/ok"
READY_URLS = ("/ready", "/services/exec-risk/ready")
HEY_TIMEOUT_SECONDS = 20


@dataclass
class Burst:
    url: str
    requests: int
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)  # hey's error distribution
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None

    @property
    def errors(self) -> int:
        """Requests without an answer, plus answers other than 200."""
        return sum(self.failures.values()) + sum(
            count for status, count in self.statuses.items() if status != 200
        )

    def detail(self) -> str:
        parts = [f"{status}: {count}" for status, count in sorted(self.statuses.items())]
        parts += [f"{count}x {message[:70]}" for message, count in self.failures.most_common(3)]
        return ", ".join(parts)


def hey(url: str, requests: int, concurrency: int) -> Burst:
    command = [
        "hey", "-n", str(requests), "-c", str(concurrency), "-t", str(HEY_TIMEOUT_SECONDS), url,
    ]  # fmt: skip
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=HEY_TIMEOUT_SECONDS + 60
    ).stdout
    total = re.search(r"Total:\s+([\d.]+) secs", output)
    burst = Burst(url=url, requests=requests, seconds=float(total.group(1)) if total else 0.0)
    percentiles = {
        int(p): float(s) * 1000 for p, s in re.findall(r"(\d+)% in ([\d.]+) secs", output)
    }
    burst.p50_ms, burst.p99_ms = percentiles.get(50), percentiles.get(99)
    if slowest := re.search(r"Slowest:\s+([\d.]+) secs", output):
        burst.max_ms = float(slowest.group(1)) * 1000
    section = ""
    for line in output.splitlines():
        if line.strip().endswith("distribution:"):
            section = line.strip()
        elif section.startswith("Status code") and (m := re.match(r"\s*\[(\d+)\]\s+(\d+)", line)):
            burst.statuses[int(m.group(1))] += int(m.group(2))
        elif section.startswith("Error") and (m := re.match(r"\s*\[(\d+)\]\s+(.*)", line)):
            burst.failures[m.group(2).strip()] += int(m.group(1))
    answered = sum(burst.statuses.values()) + sum(burst.failures.values())
    if answered != requests:
        burst.failures[f"hey accounted for {answered} of {requests} requests"] += abs(
            requests - answered
        )
    return burst


async def _get(host: str, port: int, path: str) -> tuple[int, bytes] | str:
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), HEY_TIMEOUT_SECONDS)
        writer.close()
    except (OSError, TimeoutError) as exc:
        return type(exc).__name__
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def explain(url: str, requests: int) -> tuple[Counter, Counter]:
    """One more burst of the same size, from Python, reading the answers: the statuses, and
    the failing checks named in the bodies of the answers other than 200."""
    parts = urlsplit(url)

    async def burst() -> list:
        return await asyncio.gather(
            *(_get(parts.hostname, parts.port, parts.path) for _ in range(requests))
        )

    statuses: Counter = Counter()
    reasons: Counter = Counter()
    for answer in asyncio.run(burst()):
        if isinstance(answer, str):
            statuses[f"no answer ({answer})"] += 1
            continue
        status, body = answer
        statuses[str(status)] += 1
        if status == 200:
            continue
        try:
            checks = json.loads(body).get("checks", {})
        except ValueError:
            reasons[f"a body that is not JSON: {body[:60]!r}"] += 1
            continue
        for name, check in checks.items():
            if check.get("status") == "fail":
                reasons[f"{name}: {check.get('output', '')}"] += 1
    return statuses, reasons


def setup(var: Path):
    """Redis, the database, the symbol rules and fresh bars; returns the Redis server."""
    redis_server = start_platform(var)

    from trading.marketdata.services import refresh_symbol_rules

    refresh_symbol_rules()
    refresh_bars()
    return redis_server


def refresh_bars() -> None:
    """Records a bar of each symbol now, so that exec-risk's market data is fresh."""
    from django.conf import settings

    from trading.marketdata.klines import load_bundled_bars
    from trading.marketdata.prices import record_bars

    record_bars([load_bundled_bars(symbol)[-1] for symbol in settings.SYMBOLS])


def start_servers(var: Path, processes: list) -> dict[str, str]:
    """Starts the exec-risk worker and both web servers (appended to ``processes`` as they
    start, for the caller to stop) and waits until every URL answers 200; returns each server's
    base URL."""
    from deploy.redis_server import free_port
    from tests.support.processes import celery_worker, http_status, wait_for, web_server

    env = {k: v for k, v in os.environ.items() if k != "QT_LOG_LEVEL"}
    log_dir = var / "log"
    processes.append(celery_worker("exec_risk@bench", "exec_risk", env, log_dir, 2).start())
    platform_port, baseline_port = free_port(), free_port()
    platform = web_server(platform_port, env, log_dir)
    processes.append(platform.start())
    baseline_env = {**env, "DJANGO_SETTINGS_MODULE": "bench.baseline_settings"}
    baseline = web_server(baseline_port, baseline_env, log_dir)
    baseline.name = f"baseline-{baseline_port}"
    baseline.log_path = log_dir / f"{baseline.name}.log"
    processes.append(baseline.start())
    uncached_port = free_port()
    uncached = web_server(uncached_port, {**env, "QT_HEALTH_CACHE_SECONDS": "0"}, log_dir)
    uncached.name = f"uncached-{uncached_port}"
    uncached.log_path = log_dir / f"{uncached.name}.log"
    processes.append(uncached.start())
    servers = {
        "platform": f"http://127.0.0.1:{platform_port}",
        "baseline": f"http://127.0.0.1:{baseline_port}",
        "uncached": f"http://127.0.0.1:{uncached_port}",
    }

    def answering(url: str, process) -> bool:
        assert process.alive(), f"{process.name} exited:\n{process.log_tail()}"
        return http_status(url) == 200

    wait_for(lambda: answering(servers["baseline"] + BASELINE_URL, baseline), 60, "the baseline")
    for path in READY_URLS:
        for name, process in (("platform", platform), ("uncached", uncached)):
            url = servers[name] + path
            wait_for(lambda u=url, p=process: answering(u, p), 60, f"{name} {path}")
    return servers


def ms(value: float | None) -> str:
    return "       -" if value is None else f"{value:8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests and connections")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("hey"):
        sys.exit("ready_burst: hey is missing: apt-get install hey")

    from tests.support.processes import http_status

    var = Path(tempfile.mkdtemp(prefix="qt-bench-ready-"))
    redis_server = setup(var)
    processes: list = []
    try:
        servers = start_servers(var, processes)
        plan = [("baseline", BASELINE_URL)] + [("platform", path) for path in READY_URLS]
        plan += [("uncached", path) for path in READY_URLS]
        for name, path in plan:
            hey(servers[name] + path, 100, 10)  # warm-up
        results: dict[tuple[str, str], list[Burst]] = {key: [] for key in plan}
        for _ in range(args.rounds):
            for name, path in plan:
                url = servers[name] + path
                refresh_bars()
                status = http_status(url)
                assert status == 200, f"{url} answers {status} before the burst"
                results[name, path].append(hey(url, args.requests, args.requests))
                time.sleep(1)  # the closed connections' sockets settle between bursts

        print(
            f"ready under a burst on this machine ({os.cpu_count()} cores): hey -n "
            f"{args.requests} -c {args.requests} (one request per connection, all at once), "
            f"{args.rounds} rounds; server: gunicorn, deploy/gunicorn.conf.py (2 sync workers, "
            "as make run)"
        )
        print(
            f"{'':<44}{'round':>6}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
            f"{'total s':>9}{'ratio':>7}   statuses"
        )
        for name, path in plan:
            label = {
                "baseline": "trivial view /ok (baseline)",
                "platform": path,
                "uncached": f"{path} (cache 0 s)",
            }[name]
            for index, burst in enumerate(results[name, path]):
                base = results["baseline", BASELINE_URL][index]
                print(
                    f"{label:<44}{index + 1:>6}{burst.errors:>8}{ms(burst.p50_ms):>9}"
                    f"{ms(burst.p99_ms):>9}{ms(burst.max_ms):>9}{burst.seconds:>9.2f}"
                    f"{burst.seconds / base.seconds:>7.2f}   {burst.detail()}"
                )
        print("(ratio: the burst's total time over the baseline's in the same round)")

        failing = [key for key in plan if any(b.errors for b in results[key])]
        if failing:
            print(
                "\nwhy: one more burst of the same size from Python (asyncio), reading the bodies"
            )
        for name, path in failing:
            refresh_bars()
            statuses, reasons = explain(servers[name] + path, args.requests)
            shown = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
            print(f"  {name} {path}: {shown}")
            for reason, count in reasons.most_common(4):
                print(f"    {count:>5} answers with the failing check {reason}")

        print("\ngoals:")
        for path in READY_URLS:
            errors = sum(burst.errors for burst in results["platform", path])
            met = errors == 0
            print(
                f"  {path:<28} {args.requests} concurrent, zero errors: "
                f"{'met' if met else 'NOT met'} ({errors} errors in {args.rounds} bursts of "
                f"{args.requests})"
            )
    finally:
        for process in reversed(processes):
            process.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
