"""The signal's way on PostgreSQL: the reads and writes compiled once per process are compiled
for the database they run on, row locks included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.redis_server import LocalRedis, free_port
from tests.support.postgres import LocalPostgres, postgres_programs

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.skipif(postgres_programs() is None, reason="PostgreSQL not installed")


@pytest.fixture
def postgres():
    database = LocalPostgres(postgres_programs(), "trading", "trader", "trader-password").start()
    yield database
    database.stop()


@pytest.fixture
def private_redis(tmp_path):
    server = LocalRedis(free_port(), tmp_path / "redis").start()
    yield server
    server.stop()


def test_signals_are_decided_filled_and_booked_on_postgresql(postgres, private_redis, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": (f"postgres://trader:trader-password@127.0.0.1:{postgres.port}/trading"),
        "REDIS_URL": private_redis.url,
        "QT_VAR_DIR": str(tmp_path),
        "QT_EXCHANGE": "paper",
        "QT_LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.postgres_trading"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])

    assert outcome["vendor"] == "postgresql"
    assert outcome["statuses"] == ["filled"] * 6
    # BUY, SELL, BUY of each: one position closed per symbol, one open holding what was filled.
    assert outcome["closed"] == 2
    assert outcome["open"] == outcome["fills"]
    assert set(outcome["open"]) == {"BTCUSDT", "ETHUSDT"}
    assert outcome["wrong_balances"] == []
