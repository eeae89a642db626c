"""Trading fixtures: personas, the API client, and real market data in Redis."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from tests.conftest import SYMBOLS, bars_at  # noqa: F401 - shared with the tests here


@pytest.fixture
def api(olivia):
    client = APIClient()
    client.force_authenticate(olivia)
    return client


def money(value) -> Decimal:
    return Decimal(str(value))
