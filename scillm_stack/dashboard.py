"""The reference Grafana dashboard: load it, list its queries, check them against the contract."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scillm_stack import rules
from scillm_stack.resources import dashboards_dir

PANEL_TYPES = frozenset({"timeseries", "stat", "logs"})  # current types only, no Angular "graph"
DATASOURCE_VARS = {"prometheus": "DS_PROMETHEUS", "loki": "DS_LOKI"}
LOG_LABELS = frozenset({"job", "service", "level"})  # the low-cardinality log stream labels


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    datasource: str  # prometheus | loki
    expr: str


def path() -> Path:
    return dashboards_dir() / "grafana" / "scillm_prometheus_grafana.json"


def load() -> dict[str, Any]:
    return json.loads(path().read_text())


def queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    """Every target of every panel, with its datasource type."""
    return [PanelQuery(panel["title"], target["datasource"]["type"], target["expr"])
            for panel in dashboard["panels"] for target in panel.get("targets", [])]


def interpolate(expr: str, rate_interval: str) -> str:
    """The query as Grafana would send it, with `$__rate_interval` filled in."""
    return expr.replace("$__rate_interval", rate_interval)


def problems(dashboard: dict[str, Any]) -> list[str]:
    """What is wrong with the dashboard: panel types, datasource refs, contract, log labels."""
    found: list[str] = []
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    inputs = {i["name"] for i in dashboard.get("__inputs", [])}
    for kind, var in DATASOURCE_VARS.items():
        if var not in inputs:
            found.append(f"__inputs lacks {var} (Import UI would not ask for the {kind} datasource)")
        if variables.get(var, {}).get("type") != "datasource" or variables[var].get("query") != kind:
            found.append(f"templating lacks a {kind} datasource variable {var}")
    for panel in dashboard["panels"]:
        title = panel["title"]
        if panel["type"] not in PANEL_TYPES:
            found.append(f"{title}: panel type {panel['type']!r} (use one of {sorted(PANEL_TYPES)})")
        refs = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]
        for ref in refs:
            if not ref or ref.get("uid") != f"${{{DATASOURCE_VARS.get(ref.get('type'), '?')}}}":
                found.append(f"{title}: datasource {ref!r} is not a template-variable reference")
    for query in queries(dashboard):
        if query.datasource == "prometheus":
            found += [f"{query.panel}: {v}" for v in rules.contract_violations(interpolate(query.expr, "5m"))]
        else:
            selector = re.match(r"\s*\{([^}]*)\}", query.expr)
            labels = set(re.findall(r"(\w+)\s*=", selector.group(1))) if selector else set()
            if not labels or not labels <= LOG_LABELS:
                found.append(f"{query.panel}: log stream selector {labels} must use only {sorted(LOG_LABELS)}")
    return found
