"""Trading fixtures: personas, the API client, and real market data in Redis."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from trading.marketdata.klines import load_bundled_bars
from trading.marketdata.prices import record_bars

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.fixture
def olivia(django_user_model):
    """An operator."""
    return django_user_model.objects.create_user("olivia", password="operator password 1")


@pytest.fixture
def api(olivia):
    client = APIClient()
    client.force_authenticate(olivia)
    return client


def bars_at(index: int):
    return [load_bundled_bars(symbol)[index] for symbol in SYMBOLS]


@pytest.fixture
def market(redis_server):
    """The first recorded bar of each symbol is the latest quote."""
    from trading.store import redis_client, rkey

    redis_client().delete(rkey("prices"))
    bars = bars_at(0)
    record_bars(bars)
    return {bar.symbol: bar for bar in bars}


def money(value) -> Decimal:
    return Decimal(str(value))
