"""Signal latency: from a bar's publication to the ai service's signal being published.

Runs the real parts on this machine: a Redis server, a fresh SQLite database, an ai worker and an
exec-risk worker, a model trained on the bundled history. Publishes bars the way the feed does and
reads both timestamps from the event log (``market.bar`` and the ``signal.generated`` it caused).
The baseline, measured in the same run, is a bare Celery round trip to the ai queue
(``ping_service``). The original spec asks for signal generation under 1000 ms.

    .venv/bin/python bench/signal_latency.py [--steps 60] [--pace 0.5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchkit import percentile, start_platform  # noqa: E402


def describe(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{name:<34} n={len(ms):<4} p50 {statistics.median(ms):7.2f} ms   "
        f"p95 {percentile(ms, 0.95):7.2f} ms   p99 {percentile(ms, 0.99):7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="bar steps (3 symbols each)")
    parser.add_argument("--pace", type=float, default=0.5, help="seconds between steps")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="qt-bench-"))
    redis_server = start_platform(var)

    from tests.support.processes import celery_worker, wait_for
    from trading.ai.features import WARMUP_BARS
    from trading.ai.services import train_model
    from trading.events.consumer import ensure_group
    from trading.events.replay import read_window
    from trading.marketdata.klines import load_bundled_bars
    from trading.marketdata.prices import record_bars
    from trading.marketdata.services import publish_bars
    from trading.observability.tasks import ping_service
    from trading.store import redis_client

    train_model(trigger="bench")
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    for index in range(WARMUP_BARS):
        record_bars([load_bundled_bars(s)[index] for s in symbols])
    ensure_group(redis_client(), "ai", start="$")
    ensure_group(redis_client(), "exec-risk", start="$")

    env = dict(os.environ)
    workers = [
        celery_worker("ai@bench", "ai", env, var / "log", concurrency=2).start(),
        celery_worker("exec_risk@bench", "exec_risk", env, var / "log", concurrency=2).start(),
    ]
    try:
        wait_for(lambda: ping_service.apply_async(queue="ai").get(timeout=10), 60, "ai worker")
        round_trips = []
        for _ in range(100):
            started = time.perf_counter()
            ping_service.apply_async(queue="ai").get(timeout=10)
            round_trips.append(time.perf_counter() - started)

        for step in range(args.steps):
            index = WARMUP_BARS + step
            publish_bars([load_bundled_bars(s)[index] for s in symbols])
            time.sleep(args.pace)
        time.sleep(2)

        published: dict[str, list] = {}
        for _, bar in read_window(types=["market.bar"], limit=1000):
            published.setdefault(bar.payload["symbol"], []).append(bar.ts)
        latencies = []
        for _, signal in read_window(types=["signal.generated"], limit=1000):
            if signal.payload.get("source") != "ai":
                continue
            # The ai service acts on the newest bar of a symbol: the last one published before.
            before = [ts for ts in published[signal.payload["symbol"]] if ts <= signal.ts]
            latencies.append((signal.ts - before[-1]).total_seconds())
        print(f"signal latency on this machine ({os.cpu_count()} cores), {args.steps} steps:")
        print(describe("bare Celery round trip (baseline)", round_trips))
        print(describe("bar published -> signal published", latencies))
        ratio = statistics.median(latencies) / statistics.median(round_trips)
        print(f"median ratio to the baseline: {ratio:.1f}x; spec limit 1000 ms")
    finally:
        for worker in workers:
            worker.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
