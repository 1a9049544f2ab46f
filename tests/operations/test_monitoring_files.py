"""The alert rules and the dashboard in deploy/ name only metrics kaquan exposes: none is silently blank."""

import json
import re
from pathlib import Path

import yaml

from kaquan.web.metrics import REGISTRY

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\bkaquan_[a-z_]+")
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def exposed() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES)
    return names


def test_every_alert_rule_names_an_exposed_metric_and_says_what_is_wrong() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]

    assert len(rules) >= 6
    for rule in rules:
        used = set(METRIC.findall(rule["expr"]))
        assert used <= exposed(), f"{rule['alert']}: {used - exposed()}"
        assert rule["annotations"]["summary"]
        assert rule["labels"]["severity"] in {"page", "ticket"}


def test_every_dashboard_panel_queries_exposed_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "kaquan-dashboard.json").read_text())

    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = set(METRIC.findall(target["expr"]))
            assert used, panel["title"]
            assert used <= exposed(), f"{panel['title']}: {used - exposed()}"
