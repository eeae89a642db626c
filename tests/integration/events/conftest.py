"""Each test of the event log gets streams of its own: a fresh key prefix on the shared Redis."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(autouse=True)
def own_prefix(settings, redis_client):
    prefix = f"qt-test-{uuid.uuid4().hex[:12]}"
    settings.REDIS_PREFIX = prefix
    yield prefix
    keys = list(redis_client.scan_iter(f"{prefix}:*"))
    if keys:
        redis_client.delete(*keys)
