"""deploy/prometheus and deploy/grafana: the alert rules and the dashboard parse as Prometheus and
Grafana read them, and the Prometheus operator objects agree with them and with the manifests.

`promtool` (Debian's `prometheus` package; .ci/run installs it) checks the rules, runs their unit
tests and parses every dashboard query; without it (outside CI) those checks are skipped and the
structural checks here still run. That every metric they name is exported by a live server is
tests/e2e/test_metrics_catalog.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULES = DEPLOY / "prometheus" / "lockservice-rules.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "lockservice-rules.test.yaml"
DASHBOARD = DEPLOY / "grafana" / "lockservice-dashboard.json"
MONITORING = DEPLOY / "kubernetes" / "monitoring.yaml"

_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
# Grafana's variables, replaced by what they stand for so that promtool can parse the queries.
_GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": ".*"}


def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def queried_expressions() -> list[str]:
    """Every PromQL expression the rules and the dashboard evaluate."""
    alerts = [rule["expr"] for group in rules()["groups"] for rule in group["rules"]]
    return alerts + dashboard_queries()


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed: .ci/run installs it (Debian's prometheus package)")
        pytest.skip("promtool is not installed (Debian's prometheus package; .ci/run installs it)")
    return found


def run_promtool(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_have_the_shape_prometheus_loads() -> None:
    """What `promtool check rules` checks of the structure, without promtool: the groups, one
    alert per rule with an expression, a valid `for`, a severity, a summary and a description."""
    groups = rules()["groups"]
    assert set(rules()) == {"groups"}
    assert len({group["name"] for group in groups}) == len(groups)
    names = []
    for group in groups:
        assert set(group) <= {"name", "interval", "rules"}
        for rule in group["rules"]:
            assert set(rule) <= _RULE_KEYS, rule
            names.append(rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert _DURATION.match(rule.get("for", "0s")), rule
            assert rule["labels"]["severity"] in {"critical", "warning"}
            assert set(rule["annotations"]) == {"summary", "description"}
    assert len(set(names)) == len(names) == 9


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    run_promtool("check", "rules", RULES.name, cwd=RULES.parent)
    run_promtool("test", "rules", RULE_TESTS.name, cwd=RULES.parent)


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """promtool parses the queries as recording rules (it checks no dashboard itself)."""
    records = []
    for index, text in enumerate(dashboard_queries()):
        query = text
        for variable, value in _GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        assert "$" not in query, query
        records.append({"record": f"lockservice:dashboard_query_{index}", "expr": query})
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": records}]}))
    run_promtool("check", "rules", "queries.yaml", cwd=tmp_path)


def test_dashboard_has_the_shape_grafana_imports() -> None:
    board = dashboard()
    assert board["uid"] == "lockservice"
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            variables_used = set(re.findall(r"\$\w+", target["expr"]))
            assert variables_used <= set(_GRAFANA_VARIABLES), variables_used
    titles = {panel["title"] for panel in board["panels"]}
    # What the issue asked the dashboard to show.
    for title in (
        "Lock wait p99",
        "Conflicts per second by reason",
        "Commit latency",
        "Store reachable",
        "Lease expiries per second",
        "Watchers and watcher lag",
    ):
        assert title in titles


def test_prometheus_operator_objects_match_the_manifests_and_the_rules() -> None:
    objects = {doc["kind"]: doc for doc in yaml.safe_load_all(MONITORING.read_text())}
    assert objects["PrometheusRule"]["spec"] == {"groups": rules()["groups"]}  # no drift
    deployment = {
        doc["kind"]: doc
        for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / "deployment-postgres.yaml").read_text())
        if doc["kind"] == "Service" and doc["metadata"]["name"] == "lockservice"
    }["Service"]
    service_monitor = objects["ServiceMonitor"]["spec"]
    assert service_monitor["selector"]["matchLabels"].items() <= deployment["metadata"]["labels"].items()
    (endpoint,) = service_monitor["endpoints"]
    assert endpoint["port"] in {port["name"] for port in deployment["spec"]["ports"]}
    _claim, pod = yaml.safe_load_all((DEPLOY / "kubernetes" / "sidecar-pod.yaml").read_text())
    pod_monitor = objects["PodMonitor"]["spec"]
    assert pod_monitor["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (pod_endpoint,) = pod_monitor["podMetricsEndpoints"]
    sidecar_ports = {
        port["name"] for container in pod["spec"]["initContainers"] for port in container["ports"]
    }
    assert pod_endpoint["port"] in sidecar_ports
