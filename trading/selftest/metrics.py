"""The system checks' last outcomes, on the web process's /metrics."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

# The parity check's name (``trading.selftest.scenarios.parity``), kept here so that registering
# the collector imports no scenario.
PARITY = "backtest_parity"


class SelfTestCollector:
    """Reads the newest result of every scenario from the database at scrape time."""

    def describe(self):
        # Names only, so registering does not read the database before the apps are ready.
        return [
            GaugeMetricFamily("quantum_trader_selftest_scenario_passed", "", labels=["x"]),
            GaugeMetricFamily(
                "quantum_trader_selftest_scenario_duration_seconds", "", labels=["x"]
            ),
            GaugeMetricFamily(
                "quantum_trader_selftest_last_run_timestamp_seconds", "", labels=["x"]
            ),
            GaugeMetricFamily("quantum_trader_backtest_parity_mismatches", ""),
        ]

    def collect(self):
        from django.db import DatabaseError

        from trading.models import SelfTestRun
        from trading.selftest.runner import latest_results

        passed = GaugeMetricFamily(
            "quantum_trader_selftest_scenario_passed",
            "1 when the scenario passed at its last run, 0 when it failed (skips are left out)",
            labels=["suite", "scenario"],
        )
        duration = GaugeMetricFamily(
            "quantum_trader_selftest_scenario_duration_seconds",
            "How long the scenario took at its last run",
            labels=["suite", "scenario"],
        )
        last_run = GaugeMetricFamily(
            "quantum_trader_selftest_last_run_timestamp_seconds",
            "When the last finished run of the suite ended (unix time)",
            labels=["suite"],
        )
        parity = GaugeMetricFamily(
            "quantum_trader_backtest_parity_mismatches",
            "Orders and fills of the paper book that differ from its backtest at the last "
            "backtest_parity check (absent when it was skipped)",
            labels=["account"],
        )
        try:
            for result in latest_results():
                labels = [result.run.suite, result.name]
                if result.name == PARITY and result.status in ("PASS", "FAIL"):
                    mismatches = result.data.get("mismatches")
                    if isinstance(mismatches, int):
                        parity.add_metric([str(result.data.get("account", ""))], mismatches)
                if result.status in ("PASS", "FAIL"):
                    passed.add_metric(labels, 1.0 if result.status == "PASS" else 0.0)
                duration.add_metric(labels, result.duration_seconds)
            for suite in ("integration", "e2e"):
                run = (
                    SelfTestRun.objects.filter(suite=suite, finished_at__isnull=False)
                    .order_by("-finished_at")
                    .first()
                )
                if run is not None:
                    last_run.add_metric([suite], run.finished_at.timestamp())
        except DatabaseError:
            return []
        return [passed, duration, last_run, parity]
