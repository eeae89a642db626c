"""Event log throughput: events per second published, consumed and acknowledged.

Runs on this machine against a real Redis server and a fresh SQLite database. The platform's
path is ``trading.events.log.publish_many`` (one MULTI/EXEC pipeline of ``XADD ... MAXLEN ~`` per
call, the per-service counters, and the best-effort broadcast to the dashboard's channel-layer
group) and ``StreamConsumer.drain`` with a handler that does nothing: per event the envelope
parsed and a savepoint around the handler; per batch (what one ``XREADGROUP COUNT <batch>``
returns) one query for the ids processed already, one insert of the ``ProcessedEvent`` rows,
one database transaction and one ``XACK``. The baseline, measured in the same run on the same
Redis with the same entries, is raw redis-py: pipelined ``XADD ... MAXLEN ~`` in batches of the
same size, then ``XREADGROUP COUNT <batch>`` and one ``XACK`` of the batch's ids. Rounds
alternate between the two and the medians are printed.
Goal (issue 7): at least half of raw.

The outbox relay: the same events written to the outbox as a backlog (rows committed, nothing
relayed yet, as after a Redis outage), then ``trading.events.outbox.relay`` until none waits:
per batch of ``outbox.BATCH`` rows one SELECT, one script that appends the events not appended
already and counts them, the hand-offs, one UPDATE marking the rows, the broadcast. Its rows per
second stand beside ``publish_many``'s events per second in the same rounds; then the relayed
events are consumed as above. Goal: the relay at least as fast as ``publish_many``.

One event per call, as most publishers do: raw ``XADD``, ``publish_many``, and
``outbox.record`` outside a transaction (its own commit, then the fast path that publishes it).

    .venv/bin/python bench/event_log.py [--events 5000] [--rounds 3] [--batch 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchkit import start_platform  # noqa: E402

GOAL = 0.5
# CPU seconds per event of each way of publishing (this process and Redis), over the rounds.
CPU: dict[str, list[float]] = {"publish_many": [], "relay": []}
REDIS_PID: list[int] = []


def cpu_seconds() -> float:
    """CPU time of this process's threads and of the Redis server: what publishing costs,
    which a busy machine stretches far less than the wall clock."""
    total = time.process_time()
    for pid in REDIS_PID:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                total += int((task / "schedstat").read_text().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                pass
    return total


def setup_platform() -> object:
    """A Redis server and a migrated SQLite database in a temporary directory; returns the
    server (to stop)."""
    var = Path(tempfile.mkdtemp(prefix="qt-bench-events-"))
    return start_platform(var)


def make_events(count: int) -> list:
    """Events shaped like the ones exec-risk publishes for a fill."""
    import uuid

    from trading.events.envelope import new_event

    events = []
    for index in range(count):
        correlation = str(uuid.uuid4())
        payload = {
            "order_id": index,
            "client_order_id": f"qt-{correlation[:30]}",
            "account": "main",
            "symbol": "BTCUSDT",
            "side": "BUY",
            "quantity": Decimal("0.00150"),
            "filled_quantity": Decimal("0.00150"),
            "status": "FILLED",
            "purpose": "signal",
            "venue": "paper",
            "trade_id": f"paper-{index}",
            "fill_price": Decimal("67012.34"),
            "fee": Decimal("0.10051851"),
        }
        events.append(
            new_event("order.filled", payload, service="exec-risk", correlation_id=correlation)
        )
    return events


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def reset(client, *keys: str) -> None:
    client.delete(*keys)


def platform_round(events: list, batch: int, group: str) -> tuple[float, float]:
    """Seconds to publish every event with publish_many(batch), then to consume and acknowledge
    them all with StreamConsumer.drain."""
    from trading.events.consumer import StreamConsumer, ensure_group
    from trading.events.log import events_stream, publish_many
    from trading.models import ProcessedEvent
    from trading.store import redis_client

    client = redis_client()
    reset(client, events_stream())
    ProcessedEvent.objects.all().delete()
    ensure_group(client, group, start="0")

    started, cpu = time.perf_counter(), cpu_seconds()
    for part in chunks(events, batch):
        publish_many(part)
    published = time.perf_counter()
    if batch > 1:  # the single-event rounds are reported on their own
        CPU["publish_many"].append((cpu_seconds() - cpu) / len(events))

    consumer = StreamConsumer(group, "bench-1", lambda event: None, batch=batch)
    handled = 0
    while handled < len(events):
        result = consumer.drain()
        handled += result.handled
        if not result.handled:
            raise RuntimeError(f"the consumer stopped after {handled} of {len(events)} events")
    consumed = time.perf_counter()
    assert client.xpending(events_stream(), group)["pending"] == 0
    assert ProcessedEvent.objects.filter(consumer=group).count() == len(events)
    return published - started, consumed - published


def outbox_round(events: list, group: str) -> tuple[float, float]:
    """Seconds to relay every event from an outbox backlog with ``outbox.relay``, then to consume
    and acknowledge them all with StreamConsumer.drain."""
    from trading.events import outbox
    from trading.events.consumer import StreamConsumer, ensure_group
    from trading.events.log import events_stream
    from trading.models import OutboxEvent, ProcessedEvent
    from trading.store import redis_client

    client = redis_client()
    reset(client, events_stream(), outbox._sent_key())
    ProcessedEvent.objects.all().delete()
    OutboxEvent.objects.all().delete()
    OutboxEvent.objects.bulk_create(outbox.outbox_rows(events), batch_size=500)
    ensure_group(client, group, start="0")

    started, cpu = time.perf_counter(), cpu_seconds()
    relayed = outbox.relay()
    published = time.perf_counter()
    CPU["relay"].append((cpu_seconds() - cpu) / len(events))
    if relayed != len(events) or outbox.backlog().rows:
        raise RuntimeError(f"the relay published {relayed} of {len(events)} rows")

    consumer = StreamConsumer(group, "bench-1", lambda event: None, batch=outbox.BATCH)
    handled = 0
    while handled < len(events):
        result = consumer.drain()
        handled += result.handled
        if not result.handled:
            raise RuntimeError(f"the consumer stopped after {handled} of {len(events)} events")
    consumed = time.perf_counter()
    assert client.xlen(events_stream()) == len(events)
    assert ProcessedEvent.objects.filter(consumer=group).count() == len(events)
    return published - started, consumed - published


def record_round(events: list) -> float:
    """Seconds per ``outbox.record`` of one event outside a transaction: its commit, then the
    fast path publishing it."""
    from trading.events import outbox
    from trading.events.log import events_stream
    from trading.models import OutboxEvent
    from trading.store import redis_client

    client = redis_client()
    reset(client, events_stream(), outbox._sent_key())
    OutboxEvent.objects.all().delete()
    started = time.perf_counter()
    for event in events:
        outbox.record([event])
    took = time.perf_counter() - started
    outbox.mark_published()
    if client.xlen(events_stream()) != len(events) or outbox.backlog().rows:
        raise RuntimeError("the fast path did not publish every event")
    return took / len(events)


def raw_round(events: list, batch: int, group: str) -> tuple[float, float]:
    """The same entries through raw redis-py: pipelined XADD, XREADGROUP and one XACK a batch."""
    from trading.events.log import maxlen
    from trading.store import redis_client

    client = redis_client()
    stream = "bench:raw-events"
    reset(client, stream)
    client.xgroup_create(stream, group, id="0", mkstream=True)
    bound = maxlen()

    started = time.perf_counter()
    for part in chunks(events, batch):
        pipe = client.pipeline(transaction=False)
        for event in part:
            pipe.xadd(stream, event.to_fields(), maxlen=bound, approximate=True)
        pipe.execute()
    published = time.perf_counter()

    acknowledged = 0
    while acknowledged < len(events):
        answer = client.xreadgroup(group, "bench-1", {stream: ">"}, count=batch)
        entries = [entry for _stream, entries in answer or [] for entry in entries]
        if not entries:
            raise RuntimeError(f"raw read stopped after {acknowledged} of {len(events)} entries")
        acknowledged += client.xack(stream, group, *(stream_id for stream_id, _ in entries))
    consumed = time.perf_counter()
    assert client.xpending(stream, group)["pending"] == 0
    reset(client, stream)
    return published - started, consumed - published


def sqlite_rows_round(count: int) -> float:
    """Seconds for ``count`` transactions that each insert one ProcessedEvent row in a savepoint,
    as the consumer does per event when a batch falls back to one event at a time, without
    Redis: what the database alone costs on that path."""
    import uuid

    from django.db import transaction

    from trading.models import ProcessedEvent

    ProcessedEvent.objects.all().delete()
    started = time.perf_counter()
    for _ in range(count):
        with transaction.atomic(), transaction.atomic():
            ProcessedEvent.objects.create(consumer="bench-sqlite", event_id=uuid.uuid4())
    return time.perf_counter() - started


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each, alternating")
    parser.add_argument("--batch", type=int, default=100, help="events per publish and per read")
    args = parser.parse_args()

    redis_server = setup_platform()
    REDIS_PID.append(redis_server.process.pid)
    try:
        events = make_events(args.events)
        runs: dict[str, list[tuple[float, float]]] = {"raw": [], "platform": [], "outbox": []}
        single: dict[str, list[float]] = {"raw": [], "platform": [], "outbox": []}
        database = []
        for round_ in range(args.rounds):
            runs["raw"].append(raw_round(events, args.batch, f"bench-raw-{round_}"))
            runs["platform"].append(platform_round(events, args.batch, f"bench-{round_}"))
            runs["outbox"].append(outbox_round(events, f"bench-outbox-{round_}"))
            # One event per call, as most of the platform's publishers do (a handful per commit).
            few = events[: max(1, args.events // 5)]
            single["raw"].append(raw_round(few, 1, f"bench-raw-single-{round_}")[0] / len(few))
            single["platform"].append(
                platform_round(few, 1, f"bench-single-{round_}")[0] / len(few)
            )
            single["outbox"].append(record_round(few))
            database.append(sqlite_rows_round(max(1, args.events // 5)) / max(1, args.events // 5))

        def median_rates(kind: str) -> tuple[float, float, float]:
            publish = statistics.median(rate(args.events, p) for p, _ in runs[kind])
            consume = statistics.median(rate(args.events, c) for _, c in runs[kind])
            through = statistics.median(rate(args.events, p + c) for p, c in runs[kind])
            return publish, consume, through

        raw, platform, relayed = (
            median_rates("raw"),
            median_rates("platform"),
            median_rates("outbox"),
        )
        print(
            f"event log on this machine ({os.cpu_count()} cores), {args.events} events x "
            f"{args.rounds} rounds, batches of {args.batch} (medians, events/s):"
        )
        print(f"{'':<40}{'publish':>12}{'consume+ack':>14}{'end to end':>13}")
        print(f"{'raw redis-py (baseline)':<40}{raw[0]:>12,.0f}{raw[1]:>14,.0f}{raw[2]:>13,.0f}")
        print(
            f"{'trading.events (publish_many, drain)':<40}"
            f"{platform[0]:>12,.0f}{platform[1]:>14,.0f}{platform[2]:>13,.0f}"
        )
        ratios = [p / r for p, r in zip(platform, raw, strict=True)]
        print(f"{'ratio to raw':<40}{ratios[0]:>12.2f}{ratios[1]:>14.2f}{ratios[2]:>13.2f}")
        print(
            f"{'outbox (relay a backlog, drain)':<40}"
            f"{relayed[0]:>12,.0f}{relayed[1]:>14,.0f}{relayed[2]:>13,.0f}"
        )
        through = [o / r for o, r in zip(relayed, raw, strict=True)]
        print(f"{'ratio to raw':<40}{through[0]:>12.2f}{through[1]:>14.2f}{through[2]:>13.2f}")
        verdict = "met" if ratios[2] >= GOAL else "NOT met"
        print(f"goal: end to end at least {GOAL} of raw -> {verdict} ({ratios[2]:.2f})")
        relay_ratio = relayed[0] / platform[0]
        print(
            f"goal: the outbox relay at least as fast as publish_many -> "
            f"{'met' if relay_ratio >= 1 else 'NOT met'} ({relayed[0]:,.0f} rows/s, "
            f"{relay_ratio:.2f}x)"
        )
        cpu = {name: statistics.median(values) * 1e6 for name, values in CPU.items()}
        print(
            f"CPU per event (this process and Redis): publish_many {cpu['publish_many']:.1f} us, "
            f"outbox relay {cpu['relay']:.1f} us ({cpu['publish_many'] / cpu['relay']:.2f}x "
            "publish_many's rate for the same CPU)"
        )
        print()
        raw_single = 1 / statistics.median(single["raw"])
        platform_single = 1 / statistics.median(single["platform"])
        print(
            f"publishing one event per call: raw XADD {raw_single:,.0f}/s, publish_many "
            f"{platform_single:,.0f}/s (ratio {platform_single / raw_single:.2f}), "
            f"outbox.record with its commit and fast path "
            f"{1 / statistics.median(single['outbox']):,.0f}/s"
        )
        per_row = statistics.median(database) * 1e6
        print(
            f"SQLite alone: one transaction with one ProcessedEvent row {per_row:,.0f} us "
            f"({1e6 / per_row:,.0f}/s), the floor per event of a batch done one at a time"
        )
    finally:
        redis_server.stop()


if __name__ == "__main__":
    main()
