"""Health and ready views under load, beside a trivial Django view served the same way.

Starts the platform's real parts on this machine: a Redis server, a fresh SQLite database with a
trained model and fresh bars (so that ai is ready), one Celery worker per service (2 pool
processes each, as ``make run``), and the web server as ``make run`` starts it (gunicorn,
``deploy/gunicorn.conf.py``: 2 sync workers serving ``controlpanel.wsgi``). The baseline is a
second gunicorn started with the same command and settings except the URLconf
(``bench/baseline_settings.py``): ``GET /ok`` answers ``HttpResponse("ok")`` through the same
WSGI application and the same middleware stack, touching neither Redis nor the database.

Load comes from wrk (Debian's ``wrk``): each URL for ``--duration`` seconds at 100 connections
(2 threads) and at 1 connection, after a 1 s warm-up, in ``--rounds`` rounds that each measure
every row once; the figures are medians over the rounds. wrk counts as errors the socket errors,
the requests that took longer than its 2 s timeout and every answer that is not 2xx or 3xx.
Goals (issue 7): at 100 connections zero errors, p99 under 100 ms and at least 0.8 of the
baseline's requests per second; at 1 connection p50 under 2 ms.

    .venv/bin/python bench/health_load.py [--duration 5] [--rounds 3] [--connections 100]
        [--asgi-reference]   # also the same views under uvicorn (controlpanel.asgi), for reference
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchkit import start_platform  # noqa: E402

SERVICE_URLS = ("/services/ai/health", "/services/ai/ready")
BASELINE_URL = "/ok"
# The web process's own /health: Redis and database probes only, no service report.
WEB_HEALTH_URL = "/health"

GOAL_P99_MS = 100.0
GOAL_THROUGHPUT_SHARE = 0.8
GOAL_SINGLE_P50_MS = 2.0

WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class Load:
    url: str
    connections: int
    requests: int
    seconds: float
    errors: int
    error_detail: str
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@dataclass
class Summary:
    rps: float
    errors: int
    error_detail: str
    p50_ms: float
    p99_ms: float
    ratio: float


def summarize(rounds: list[Load], baselines: list[Load]) -> Summary:
    """Medians over the rounds; the ratio pairs each round with the baseline's same round."""
    return Summary(
        rps=statistics.median(load.rps for load in rounds),
        errors=sum(load.errors for load in rounds),
        error_detail="; ".join(load.error_detail for load in rounds if load.errors),
        p50_ms=statistics.median(load.p50_ms for load in rounds),
        p99_ms=statistics.median(load.p99_ms for load in rounds),
        ratio=statistics.median(
            load.rps / base.rps for load, base in zip(rounds, baselines, strict=True)
        ),
    )


def wrk(url: str, connections: int, seconds: float, script: Path) -> Load:
    threads = min(2, connections)
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
        "-s", str(script), url,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    report = json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
    kinds = ("connect", "read", "write", "timeout", "status")
    errors = {kind: report[kind] for kind in kinds if report[kind]}
    return Load(
        url=url,
        connections=connections,
        requests=report["requests"],
        seconds=report["duration_us"] / 1e6,
        errors=sum(errors.values()),
        error_detail=", ".join(f"{kind} {count}" for kind, count in errors.items()),
        p50_ms=report["p50_us"] / 1000,
        p90_ms=report["p90_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        max_ms=report["max_us"] / 1000,
    )


def setup(var: Path):
    """Redis, the database, a model and fresh bars; returns the Redis server."""
    redis_server = start_platform(var)

    from trading.ai.services import train_model

    train_model(trigger="bench", days=3)
    refresh_bars()
    return redis_server


def refresh_bars() -> None:
    """Records a bar of each symbol now, so that market data stays fresh for the ai service."""
    from django.conf import settings

    from trading.marketdata.klines import load_bundled_bars
    from trading.marketdata.prices import record_bars

    record_bars([load_bundled_bars(symbol)[-1] for symbol in settings.SYMBOLS])


def start_servers(
    var: Path, asgi_reference: bool, processes: list
) -> dict[str, tuple[str, object]]:
    """Starts the workers and the web servers (appended to ``processes`` as they start, for the
    caller to stop) and waits until they answer; returns each server's base URL and process."""
    from deploy.redis_server import free_port
    from tests.support.processes import (
        celery_worker,
        http_status,
        socket_server,
        wait_for,
        web_server,
    )

    env = {k: v for k, v in os.environ.items() if k != "QT_LOG_LEVEL"}
    log_dir = var / "log"
    for node, queue in (("ai@bench", "ai"), ("exec_risk@bench", "exec_risk"),
                        ("analytics@bench", "analytics")):  # fmt: skip
        processes.append(celery_worker(node, queue, env, log_dir, concurrency=2).start())

    platform_port, baseline_port = free_port(), free_port()
    platform = web_server(platform_port, env, log_dir).start()
    processes.append(platform)
    baseline_env = {**env, "DJANGO_SETTINGS_MODULE": "bench.baseline_settings"}
    baseline = web_server(baseline_port, baseline_env, log_dir)
    baseline.name = f"baseline-{baseline_port}"
    baseline.log_path = log_dir / f"{baseline.name}.log"
    processes.append(baseline.start())
    servers = {
        "platform": (f"http://127.0.0.1:{platform_port}", platform),
        "baseline": (f"http://127.0.0.1:{baseline_port}", baseline),
    }
    # The same server computing every answer: what one computation costs.
    uncached_port = free_port()
    uncached = web_server(uncached_port, {**env, "QT_HEALTH_CACHE_SECONDS": "0"}, log_dir)
    uncached.name = f"uncached-{uncached_port}"
    uncached.log_path = log_dir / f"{uncached.name}.log"
    processes.append(uncached.start())
    servers["uncached"] = (f"http://127.0.0.1:{uncached_port}", uncached)
    if asgi_reference:
        port = free_port()
        reference = socket_server(port, env, log_dir)
        processes.append(reference.start())
        servers["uvicorn"] = (f"http://127.0.0.1:{port}", reference)

    def answering(url: str, process) -> bool:
        assert process.alive(), f"{process.name} exited:\n{process.log_tail()}"
        return http_status(url) == 200

    for name, (base, process) in servers.items():
        path = BASELINE_URL if name == "baseline" else "/ready"
        wait_for(lambda u=base + path, p=process: answering(u, p), 60, f"the {name} server")
    for name, (base, process) in servers.items():
        if name != "baseline":
            wait_for(
                lambda u=base + "/services/ai/ready", p=process: answering(u, p), 60, "ai ready"
            )
    return servers


def ms(value: float) -> str:
    return f"{value:8.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each row")
    parser.add_argument("--asgi-reference", action="store_true",
                        help="also serve the views with uvicorn (controlpanel.asgi)")  # fmt: skip
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("health_load: wrk is missing: apt-get install wrk")

    from tests.support.processes import http_status

    var = Path(tempfile.mkdtemp(prefix="qt-bench-health-"))
    script = var / "report.lua"
    script.write_text(WRK_REPORT)
    redis_server = setup(var)
    processes: list = []
    try:
        servers = start_servers(var, args.asgi_reference, processes)
        plan = [("baseline", BASELINE_URL)]
        plan += [("platform", path) for path in (*SERVICE_URLS, WEB_HEALTH_URL)]
        plan += [("uncached", path) for path in SERVICE_URLS]
        plan += [("uvicorn", path) for path in SERVICE_URLS if "uvicorn" in servers]
        # Rounds: every row once per round, so that a busy moment of a shared machine falls
        # on one round of each row rather than on all of one row; medians over the rounds.
        loads: dict[tuple[str, str, int], list[Load]] = {}
        for _ in range(args.rounds):
            for connections in (args.connections, 1):
                for name, path in plan:
                    url = servers[name][0] + path
                    refresh_bars()
                    status = http_status(url)
                    assert status == 200, f"{url} answers {status} before the load"
                    wrk(url, connections, 1, script)  # warm-up
                    loads.setdefault((name, path, connections), []).append(
                        wrk(url, connections, args.duration, script)
                    )
        results = {
            key: summarize(rounds, loads["baseline", BASELINE_URL, key[2]])
            for key, rounds in loads.items()
        }

        print(
            f"health and ready under load on this machine ({os.cpu_count()} cores), wrk "
            f"{args.duration:g} s per row, {args.rounds} rounds, medians (ratio: the median of "
            "each round's req/s over the baseline's in that round); server: gunicorn, "
            "deploy/gunicorn.conf.py (2 sync workers, as make run)"
        )
        for connections in (args.connections, 1):
            print(f"\n{connections} connection{'s' if connections > 1 else ''}:")
            print(f"{'':<44}{'req/s':>9}{'errors':>8}{'p50':>12}{'p99':>12}{'ratio':>8}")
            for name, path in plan:
                load = results[name, path, connections]
                label = {
                    "baseline": "trivial view /ok (baseline)",
                    "platform": path,
                    "uncached": f"{path} (cache 0 s)",
                    "uvicorn": f"{path} (uvicorn, ASGI)",
                }[name]
                print(
                    f"{label:<44}{load.rps:>9.0f}{load.errors:>8}{ms(load.p50_ms):>12}"
                    f"{ms(load.p99_ms):>12}{load.ratio:>8.2f}"
                    + (f"   ({load.error_detail})" if load.errors else "")
                )

        print("\ngoals:")
        for path in SERVICE_URLS:
            many = results["platform", path, args.connections]
            one = results["platform", path, 1]
            share = many.ratio
            checks = [
                (f"{args.connections} conns: zero errors", many.errors == 0, f"{many.errors}"),
                (f"{args.connections} conns: p99 < {GOAL_P99_MS:g} ms", many.p99_ms < GOAL_P99_MS,
                 f"{many.p99_ms:.1f} ms"),
                (f"{args.connections} conns: >= {GOAL_THROUGHPUT_SHARE} of baseline",
                 share >= GOAL_THROUGHPUT_SHARE, f"{share:.2f}"),
                (f"1 conn: p50 < {GOAL_SINGLE_P50_MS:g} ms", one.p50_ms < GOAL_SINGLE_P50_MS,
                 f"{one.p50_ms:.2f} ms"),
            ]  # fmt: skip
            for what, met, figure in checks:
                print(f"  {path:<22} {what:<32} {'met' if met else 'NOT met':<8} ({figure})")
    finally:
        for process in reversed(processes):
            process.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
