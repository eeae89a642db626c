"""The last (re)training's outcome, in Redis for every process: what the health page tells."""

from __future__ import annotations

import json
import logging
import time

from redis.exceptions import RedisError

from trading.store import redis_client, rkey

logger = logging.getLogger(__name__)

TRAINING_KEY = ("training", "last")


def record_training(trigger: str, version: str | None, detail: str) -> None:
    """Remembers the last (re)training's outcome for the health page."""
    outcome = {"at": time.time(), "trigger": trigger, "version": version, "detail": detail}
    try:
        redis_client().set(rkey(*TRAINING_KEY), json.dumps(outcome))
    except RedisError:
        logger.warning("could not record the training outcome in Redis", exc_info=True)


def last_training() -> dict | None:
    raw = redis_client().get(rkey(*TRAINING_KEY))
    return json.loads(raw) if raw else None
