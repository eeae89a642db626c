"""The original spec's metric names: read from the spec, and every one declared by a service."""

from __future__ import annotations

import pytest

from tests.support.spec_metrics import COPY, SPEC, names_in, service_of
from trading.observability.services import SERVICES


@pytest.mark.skipif(not SPEC.exists(), reason="the original spec is not beside the repository")
def test_the_copy_of_the_spec_s_names_is_the_spec_s_list():
    assert names_in(SPEC.read_text()) == COPY


def test_names_are_read_from_the_spec_s_lists_and_code_blocks_only():
    text = (
        "- `exec_risk_service_daily_trades`\n"
        "```\nai_service_errors_total\n```\n"
        "**File:** `services/exec_risk_service/run_exec_risk_service.py`\n"
        "see ai_service_uptime_seconds in prose\n"
    )
    assert names_in(text) == {"exec_risk_service_daily_trades", "ai_service_errors_total"}


def test_every_service_has_names_in_the_spec_and_each_name_one_service():
    by_service = {name: service_of(name).name for name in COPY}
    assert set(by_service.values()) == set(SERVICES)
    assert by_service["analytics_os_service_drift_detected"] == "analytics"
    assert by_service["ai_service_errors_total"] == "ai"
