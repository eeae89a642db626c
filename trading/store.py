"""The platform's Redis: one client per process and one key prefix for everything it writes."""

from __future__ import annotations

import functools

import redis
from django.conf import settings


def rkey(*parts: object) -> str:
    """A Redis key under the platform's prefix: rkey("worker", "ai@host") -> "qt:worker:ai@host"."""
    return ":".join([settings.REDIS_PREFIX, *(str(p) for p in parts)])


@functools.cache
def _client(url: str, timeout: float | None) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )


def redis_client() -> redis.Redis:
    """The shared client for work that may wait on Redis (workers, commands)."""
    return _client(settings.REDIS_URL, None)


@functools.cache
def _probe_client(url: str, timeout: float) -> redis.Redis:
    # A burst of health requests runs as many views at once as there are requests: they wait
    # (up to the timeout) for one of a bounded set of connections instead of failing outright.
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=PROBE_CONNECTIONS,
        timeout=timeout,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)


PROBE_CONNECTIONS = 50


def redis_probe_client() -> redis.Redis:
    """A client whose every call gives up quickly: for health and ready views."""
    return _probe_client(settings.REDIS_URL, settings.HEALTH_REDIS_TIMEOUT_SECONDS)
