"""Worker heartbeats recorded in Redis.

Each worker node (``ai@host``) keeps one hash, ``<prefix>:worker:<node>``, refreshed every
``HEARTBEAT_INTERVAL_SECONDS`` with a TTL of ``HEARTBEAT_EXPIRY_SECONDS``: a worker that dies
without a word (SIGKILL, a lost host) disappears once its record expires. A set per service,
``<prefix>:workers:<service>``, indexes the nodes so readers never scan the keyspace.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import redis

from trading.observability.services import SERVICES, service_for_queue
from trading.store import rkey

# Count a finished task on the worker's record only while the record exists, so a late
# increment never resurrects an expired worker as a record without a TTL.
_COUNT_TASK = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HINCRBY', KEYS[1], 'tasks_done', 1)
end
return -1
"""


@dataclass(frozen=True)
class WorkerBeat:
    node: str
    host: str
    pid: int
    queues: tuple[str, ...]
    started: float  # unix seconds
    last_beat: float  # unix seconds
    tasks_done: int = 0

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(s.name for q in self.queues if (s := service_for_queue(q)))

    def age(self, now: float) -> float:
        return max(0.0, now - self.last_beat)

    def to_mapping(self) -> dict[str, str]:
        return {
            "node": self.node,
            "host": self.host,
            "pid": str(self.pid),
            "queues": json.dumps(list(self.queues)),
            "started": repr(self.started),
            "last_beat": repr(self.last_beat),
        }

    @classmethod
    def from_mapping(cls, data: dict[str, str]) -> WorkerBeat:
        return cls(
            node=data["node"],
            host=data["host"],
            pid=int(data["pid"]),
            queues=tuple(json.loads(data["queues"])),
            started=float(data["started"]),
            last_beat=float(data["last_beat"]),
            tasks_done=int(data.get("tasks_done", 0)),
        )

    def as_json(self, now: float) -> dict[str, object]:
        return {
            "node": self.node,
            "host": self.host,
            "pid": self.pid,
            "queues": list(self.queues),
            "started": datetime.fromtimestamp(self.started, UTC).isoformat(),
            "uptime_seconds": round(now - self.started, 3),
            "heartbeat_age_seconds": round(self.age(now), 3),
            "tasks_done": self.tasks_done,
        }


def record_heartbeat(client: redis.Redis, beat: WorkerBeat, expiry: float) -> None:
    """Writes (or refreshes) the worker's record and indexes it under each of its services."""
    key = rkey("worker", beat.node)
    pipe = client.pipeline(transaction=True)
    pipe.hset(key, mapping=beat.to_mapping())
    pipe.pexpire(key, int(expiry * 1000))
    for service in beat.services:
        pipe.sadd(rkey("workers", service), beat.node)
    pipe.execute()


def remove_heartbeat(client: redis.Redis, beat: WorkerBeat) -> None:
    """A worker that shuts down cleanly withdraws at once instead of waiting for the expiry."""
    pipe = client.pipeline(transaction=True)
    pipe.delete(rkey("worker", beat.node))
    for service in beat.services:
        pipe.srem(rkey("workers", service), beat.node)
    pipe.execute()


def count_task(client: redis.Redis, node: str) -> None:
    client.eval(_COUNT_TASK, 1, rkey("worker", node))


def read_workers(client: redis.Redis, service: str) -> list[WorkerBeat]:
    """The live workers of a service, oldest first; expired nodes are pruned from the index."""
    index = rkey("workers", service)
    nodes = sorted(client.smembers(index))
    if not nodes:
        return []
    pipe = client.pipeline(transaction=False)
    for node in nodes:
        pipe.hgetall(rkey("worker", node))
    records = pipe.execute()
    workers, gone = [], []
    for node, data in zip(nodes, records, strict=True):
        if data and "last_beat" in data:
            workers.append(WorkerBeat.from_mapping(data))
        else:
            gone.append(node)
    if gone:
        client.srem(index, *gone)
    return sorted(workers, key=lambda w: w.started)


def read_all_workers(client: redis.Redis) -> dict[str, list[WorkerBeat]]:
    return {name: read_workers(client, name) for name in SERVICES}


class HeartbeatThread(threading.Thread):
    """Beats for one worker node from its main process until stopped."""

    def __init__(
        self,
        client: redis.Redis,
        beat: WorkerBeat,
        interval: float,
        expiry: float,
        clock,
    ) -> None:
        super().__init__(name=f"heartbeat-{beat.node}", daemon=True)
        self.client = client
        self.beat = beat
        self.interval = interval
        self.expiry = expiry
        self.clock = clock
        self._stopped = threading.Event()

    def beat_once(self) -> None:
        self.beat = replace(self.beat, last_beat=self.clock())
        record_heartbeat(self.client, self.beat, self.expiry)

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                self.beat_once()
            except redis.RedisError:
                # Redis is away: the record expires and the service reads as not ready, which is
                # the truth. Keep trying; the next beat restores it.
                pass
            self._stopped.wait(self.interval)

    def stop(self) -> None:
        self._stopped.set()
