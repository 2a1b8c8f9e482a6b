"""The reference dashboard, statically: current panel types, import-ready, true to the contract."""

from __future__ import annotations

import copy

from scillm_stack import dashboard


def test_dashboard_has_no_problems():
    assert dashboard.problems(dashboard.load()) == []


def test_dashboard_covers_every_signal_of_the_seed():
    exprs = " ".join(q.expr for q in dashboard.queries(dashboard.load()))
    for needle in ("scillm_requests_total", 'retried="1"', "scillm_retries_total", "histogram_quantile(0.95",
                   "by (le, route)", "scillm_router_fallbacks_total", "scillm_requests_in_flight",
                   'result="error"', "batch_"):
        assert needle in exprs, needle
    latency = [p for p in dashboard.load()["panels"] if p["title"] == "Latency p95 by route"]
    assert latency[0]["targets"][0]["exemplar"] is True


def test_problems_catches_angular_panels_bad_labels_and_fixed_datasources():
    broken = copy.deepcopy(dashboard.load())
    broken["panels"][0]["type"] = "graph"
    broken["panels"][1]["targets"][0]["expr"] = 'sum(rate(scillm_requests_total{model_id="gpt"}[5m]))'
    broken["panels"][2]["datasource"] = {"type": "prometheus", "uid": "abc123"}
    broken["panels"][-1]["targets"][0]["expr"] = '{run_id="42"} |= "x"'
    broken["__inputs"] = []
    found = "\n".join(dashboard.problems(broken))
    for needle in ("panel type 'graph'", "model_id", "not a template-variable reference", "run_id",
                   "__inputs lacks DS_PROMETHEUS"):
        assert needle in found, (needle, found)
