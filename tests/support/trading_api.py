"""Signals through the trading API and their fates, for the tests that drive the workers."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import wait_for


def post_signal(api, **fields) -> dict:
    """Posts a signal (a 1,000 USDT BUY of BTCUSDT at 0.9 unless told otherwise); a field given
    as None is left out."""
    body = {"symbol": "BTCUSDT", "side": "BUY", "confidence": 0.9, "notional": "1000", **fields}
    body = {name: value for name, value in body.items() if value is not None}
    response = api.post("/api/v1/signals", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def settled(api, signal_id, *statuses, timeout: float = 20) -> dict:
    """The signal as the API shows it once its status is one of ``statuses``."""

    def fate():
        body = api.get(f"/api/v1/signals/{signal_id}").json()
        return body if body["status"] in statuses else None

    return wait_for(fate, timeout, f"signal {signal_id} to become {'/'.join(statuses)}")


def metric(client, service, name, **labels) -> float:
    """A sample's value on a service's metrics page (0 when it is not there)."""
    text = client.get(f"/services/{service}/metrics").content.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0
