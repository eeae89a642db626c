"""The monitoring stack in monitoring/: Prometheus scrape config and alert rules (checked and
unit-tested with promtool), Grafana provisioning and dashboards, and the promise that every
metric a dashboard or an alert names is one the platform actually exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import ROOT

PROMETHEUS = ROOT / "monitoring" / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
GRAFANA = ROOT / "monitoring" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

DATASOURCE = {"type": "prometheus", "uid": "quantum-prometheus"}
EXPECTED_DASHBOARDS = {"overview", "ai", "exec-risk", "analytics", "trading"}

# Names a dashboard or rule may use although no page exports them yet. Only
# quantum_trader_selftest_* may ever be listed here; the web process exports them all now.
PENDING_SYSTEM_CHECKS: set[str] = set()

# The metric names this test can vouch for: the services' prefixes, the web process'
# django-prometheus metrics, Prometheus' own `up`, and the system checks' metrics (with the
# backtest parity check's).
CHECKED_NAME = re.compile(
    r"^(?:ai_service_|exec_risk_service_|analytics_os_service_|django_http_|"
    r"quantum_trader_selftest_|quantum_trader_backtest_)\w+$|^up$"
)
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")

needs_promtool = pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def rules() -> list[dict]:
    return [
        rule for path in RULES for group in load_yaml(path)["groups"] for rule in group["rules"]
    ]


def alerts() -> list[dict]:
    return [rule for rule in rules() if "alert" in rule]


def dashboards() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in DASHBOARDS}


def panels(board: dict) -> list[dict]:
    """Every panel, including those nested in collapsed rows."""
    found = []
    for panel in board.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def walk(value, key: str):
    """Every value stored under ``key`` anywhere in a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item, key)


def dashboard_expressions() -> list[tuple[str, str]]:
    return [(name, expr) for name, board in dashboards().items() for expr in walk(board, "expr")]


def rule_expressions() -> list[tuple[str, str]]:
    """Rule expressions, and the queries alert annotations run (``query "..."``)."""
    found = []
    for rule in rules():
        label = rule.get("alert") or rule["record"]
        found.append((label, rule["expr"]))
        for text in rule.get("annotations", {}).values():
            found.extend((label, q) for q in re.findall(r'query\s+"((?:[^"\\]|\\.)*)"', text))
    return found


def identifiers(expr: str) -> set[str]:
    """The identifiers of a PromQL expression outside string literals and label matchers."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\$\w+", "", expr)  # Grafana variables such as $__range
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))


def metric_names(expr: str) -> set[str]:
    return {name for name in identifiers(expr) if CHECKED_NAME.match(name)}


def recorded_names(expr: str) -> set[str]:
    """Names of recording rules (level:metric:operations) an expression uses."""
    return {name for name in identifiers(expr) if ":" in name}


# --- Prometheus ---------------------------------------------------------------------------------


def test_scrape_jobs_cover_the_web_process_and_every_service():
    jobs = {job["job_name"]: job for job in load_yaml(CONFIG)["scrape_configs"]}
    assert {name: job["metrics_path"] for name, job in jobs.items()} == {
        "web": "/metrics",
        "ai": "/services/ai/metrics",
        "exec-risk": "/services/exec-risk/metrics",
        "analytics": "/services/analytics/metrics",
    }
    for job in jobs.values():
        assert job["static_configs"] == [{"targets": ["web:8000"]}]
    assert load_yaml(CONFIG)["rule_files"] == ["rules/*.yml"]


@needs_promtool
def test_promtool_check_config():
    result = promtool("check", "config", "monitoring/prometheus/prometheus.yml", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    # rule_files resolved: every file in rules/ is found
    rule_files = len(list((ROOT / "monitoring" / "prometheus" / "rules").glob("*.yml")))
    assert f"{rule_files} rule files found" in result.stdout + result.stderr


@needs_promtool
def test_promtool_check_rules():
    assert RULES, "no rule files"
    result = promtool("check", "rules", *(str(p.relative_to(PROMETHEUS)) for p in RULES),
                      cwd=PROMETHEUS)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_test_rules():
    assert RULE_TESTS, "no rule unit tests"
    result = promtool("test", "rules", *(str(p.relative_to(PROMETHEUS)) for p in RULE_TESTS),
                      cwd=PROMETHEUS)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_duration_a_severity_and_explains_itself():
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alerts():
        assert rule.get("for"), rule["alert"]
        assert rule.get("labels", {}).get("severity") in ("critical", "warning"), rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), rule["alert"]


def test_the_issue_s_alerts_exist():
    expressions = "\n".join(rule["expr"] for rule in alerts())
    for needle in (
        "up{",
        "ai_service_ready == 0",
        "exec_risk_service_ready == 0",
        "analytics_os_service_ready == 0",
        "job:quantum_trader_task_failure:ratio_rate5m",
        "_queue_length",
        "ai_service_signals_generated_total",
        'exec_risk_service_trading_state{state="HALTED"} == 1',
        "exec_risk_service_daily_pnl_usd",
        "analytics_os_service_drift_detected == 1",
        "quantum_trader_selftest_scenario_passed == 0",
    ):
        assert needle in expressions, needle


def test_every_alert_is_unit_tested_firing_and_quiet():
    fired, quiet = set(), set()
    for path in RULE_TESTS:
        for group in load_yaml(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fired == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"


# --- Grafana ------------------------------------------------------------------------------------


def test_the_datasource_is_provisioned_with_the_fixed_uid():
    (source,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ]
    assert source["uid"] == DATASOURCE["uid"] and source["type"] == DATASOURCE["type"]
    assert source["url"] == "http://prometheus:9090"


def test_dashboards_are_provisioned_from_the_mounted_folder():
    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_docker_compose_mounts_the_monitoring_files():
    services = load_yaml(ROOT / "docker-compose.yml")["services"]
    prometheus = set(services["prometheus"]["volumes"])
    assert "./monitoring/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus
    assert "./monitoring/prometheus/rules:/etc/prometheus/rules:ro" in prometheus
    grafana = set(services["grafana"]["volumes"])
    assert "./monitoring/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    for kind in ("datasources", "dashboards"):
        mount = f"./monitoring/grafana/provisioning/{kind}:/etc/grafana/provisioning/{kind}:ro"
        assert mount in grafana


def test_dashboards_parse_and_use_only_the_fixed_datasource():
    assert set(dashboards()) == EXPECTED_DASHBOARDS
    uids = set()
    for path in DASHBOARDS:
        text = path.read_text()
        assert "${DS_" not in text, path.name
        board = json.loads(text)
        assert "__inputs" not in board, path.name
        assert board.get("uid") and board["uid"] not in uids, path.name
        uids.add(board["uid"])
        assert board.get("title") and board.get("description"), path.name
        for source in walk(board, "datasource"):
            assert source == DATASOURCE, (path.name, source)
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            where = f"{path.name}: {panel.get('title')}"
            assert panel.get("datasource") == DATASOURCE, where
            assert panel.get("title") and panel.get("description"), where
            assert panel.get("targets"), where
            for target in panel["targets"]:
                assert target.get("datasource") == DATASOURCE, where
                assert target.get("expr", "").strip(), where


@needs_promtool
def test_dashboard_expressions_are_valid_promql(tmp_path):
    """Each dashboard query, as a recording rule, must pass promtool's parser."""
    rules_file = {
        "groups": [{
            "name": "dashboards",
            "rules": [
                {"record": f"dashboard:query_{i}:check",
                 "expr": expr.replace("$__range", "1h").replace("$__rate_interval", "1m")}
                for i, (_, expr) in enumerate(dashboard_expressions())
            ],
        }]
    }  # fmt: skip
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump(rules_file))
    result = promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_recording_rules_used_by_dashboards_and_alerts_are_defined():
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    for where, expr in dashboard_expressions() + rule_expressions():
        assert recorded_names(expr) <= recorded, (where, expr)


def test_metric_name_extraction():
    assert metric_names(
        'sum by (le) (rate(ai_service_signal_latency_seconds_bucket{job="ai"}[5m])) '
        '/ on() group_left up{job=~"ai_service_x"} and vector(0) '
        "and increase(exec_risk_service_orders_denied_total[$__range])"
    ) == {"ai_service_signal_latency_seconds_bucket", "up",
          "exec_risk_service_orders_denied_total"}  # fmt: skip
    assert recorded_names("job:quantum_trader_task_failure:ratio_rate5m > 0.05") == {
        "job:quantum_trader_task_failure:ratio_rate5m"
    }


# --- the names against the live metrics pages ---------------------------------------------------


def exported_names(text: str) -> set[str]:
    """The sample names a page exports, or would export once the family has samples: a family
    declared without samples yet (a labelled counter before its first increment, a histogram
    before its first observation) is announced by its TYPE line only."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        # counter families drop the _total of their samples, info families the _info
        names.update({
            "counter": [f"{family.name}_total"],
            "info": [f"{family.name}_info"],
            "histogram": [family.name, *(family.name + s for s in HISTOGRAM_SUFFIXES)],
            "summary": [family.name, f"{family.name}_count", f"{family.name}_sum"],
        }.get(family.type, [family.name]))  # fmt: skip
    return names


def referenced_names() -> dict[str, set[str]]:
    """Metric name -> the dashboards and rules that name it."""
    found: dict[str, set[str]] = {}
    for where, expr in dashboard_expressions() + rule_expressions():
        for name in metric_names(expr):
            found.setdefault(name, set()).add(where)
    return found


def test_pending_names_are_only_the_system_checks():
    assert all(name.startswith("quantum_trader_selftest_") for name in PENDING_SYSTEM_CHECKS)


@pytest.mark.django_db(transaction=True)
def test_every_metric_a_dashboard_or_an_alert_names_is_exported(client, service_workers, ai_ready):
    exported = {"up"}  # Prometheus' own, one per scrape target
    for job in load_yaml(CONFIG)["scrape_configs"]:
        response = client.get(job["metrics_path"])
        assert response.status_code == 200, job["metrics_path"]
        exported |= exported_names(response.content.decode())

    referenced = referenced_names()
    # The scan finds the names it should (the extraction is not vacuous).
    assert {
        "up",
        "ai_service_ready",
        "exec_risk_service_orders_denied_total",
        "exec_risk_service_daily_loss_limit_usd",
        "analytics_os_service_drift_detected",
        "django_http_responses_total_by_status_total",
        "quantum_trader_selftest_scenario_passed",
    } <= set(referenced)

    def known(name: str) -> bool:
        if name in exported:
            return True
        base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        return base is not None and base in exported

    unknown = {
        name: sorted(where)
        for name, where in referenced.items()
        if not known(name) and name not in PENDING_SYSTEM_CHECKS
    }
    assert unknown == {}, f"named by dashboards or rules but exported by no page: {unknown}"
