"""Live suite: every metric, label value, seed example and alert against a real Prometheus.

Tests run in file order on one stack: steady first (alerts silent), then each fault
scenario fires its alert, then the remaining scenarios, then the strict contract walk.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import pytest

from scillm_stack import contract, dashboard, rules, spec
from scillm_stack.check import JOB, Checker, contract_checks, example_checks
from scillm_stack.scenarios import SCENARIOS

pytestmark = pytest.mark.integration
FAST = spec.timing("fast")
ALERTS = rules.alert_names()


def wait_until(probe: Callable[[], object], timeout_s: float, interval_s: float = 0.5) -> object:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    return last


def test_up_is_idempotent_and_status_reports_ready(stack):
    again = stack.cli("up", "--profile", "fast")
    assert "already running: collector, demo, prometheus" in again.stderr
    rows = json.loads(stack.cli("status", "--json").stdout)
    assert {r["service"]: (r["state"], r["ready"]) for r in rows} == {
        "prometheus": ("running", True), "collector": ("running", True), "demo": ("running", True)}
    versions = {r["service"]: r["version"] for r in rows}
    assert versions["prometheus"] == versions["collector"] == spec.PROMETHEUS.version


def test_demo_target_is_scraped(stack):
    assert wait_until(lambda: stack.prom.value(f'up{{job="{JOB}"}}') == 1, 30), "demo target never up"


def test_samples_arrive_only_through_the_collectors_remote_write(stack):
    label, value = spec.COLLECTOR_LABEL
    for metric in contract.METRICS:
        sample = metric.sample_names[0]
        via_collector = stack.prom.value(f'count({sample}{{{label}="{value}"}})')
        assert via_collector == metric.sample_series()[sample], sample
        assert stack.prom.query(f'{sample}{{{label}=""}}') == [], f"{sample} arrived by another path"
    # Prometheus scrapes only itself; the collector's own counters show what it sent.
    assert {t["labels"]["job"] for t in stack.prom.targets()} == {"prometheus"}
    import requests

    own = requests.get(f"http://127.0.0.1:{stack.ports['collector']}/metrics", timeout=5).text
    sent = [line for line in own.splitlines() if line.startswith("prometheus_remote_storage_samples_total")]
    assert sent and float(sent[0].rsplit(" ", 1)[1]) > 0, sent


def test_every_contract_series_exists_from_first_scrape(stack):
    checker = Checker(stack.prom)
    failed = [r for r in map(checker.run, contract_checks(strict=False, lookback="1h")) if not r.passed]
    assert not failed, [(r.check.name, r.reason) for r in failed]


def test_alerts_stay_silent_under_steady(stack):
    # The demo has run steady since `up`; wait out the longest window, then watch a while.
    time.sleep(float(FAST.capacity_window.rstrip("s")) + 2)
    for _ in range(10):
        assert stack.prom.query("ALERTS") == [], stack.prom.query("ALERTS")
        time.sleep(0.5)
    assert stack.prom.value("scillm:requests:rps") > 0


@pytest.mark.parametrize("scenario", [s.name for s in SCENARIOS.values() if s.alert])
def test_alert_fires_under_its_fault_scenario(stack, scenario):
    alert = SCENARIOS[scenario].alert
    stack.demo.run(scenario, rps=10, duration_s=90)
    state = wait_until(lambda: stack.prom.alert_state(alert) == "firing" and "firing", 75)
    assert state == "firing", f"{alert} is {stack.prom.alert_state(alert)} under {scenario}"
    firing = [a for a in stack.prom.alerts() if a["labels"]["alertname"] == alert and a["state"] == "firing"]
    assert firing[0]["labels"]["severity"] in ("warning", "critical")
    assert firing[0]["annotations"]["summary"] and firing[0]["annotations"]["description"]


def _run_scenario(stack, name):
    summary = stack.demo.wait(stack.demo.run(name, rps=15, duration_s=12), timeout_s=60)
    assert summary["requests"] > 0 and summary["status"] in ("ok", "degraded"), summary
    # Let the last scrape pick up the final counts.
    time.sleep(2 * float(FAST.scrape_interval.rstrip("s")) + 1)


def test_remaining_scenarios_run_to_completion(stack):
    for name in ("burst", "chaos", "steady"):
        _run_scenario(stack, name)
    # Only chaos times calls out, a handful per reason in a 12 s run, so a run can still
    # leave a `timeout` value uncounted now and then: run it again, bounded.
    checker = Checker(stack.prom)
    for _ in range(3):
        if all(checker.run(c).passed for c in contract_checks(strict=True, lookback="1h") if c.kind == "label"):
            break
        _run_scenario(stack, "chaos")


@pytest.mark.parametrize("check", contract_checks(strict=True, lookback="1h"), ids=lambda c: c.name)
def test_every_allowed_label_value_was_counted(stack, check):
    result = Checker(stack.prom).run(check)
    assert result.passed, f"{check.promql}: {result.reason}"


@pytest.mark.parametrize("check", example_checks(FAST.window, FAST.capacity_window), ids=lambda c: c.name)
def test_seed_promql_examples_return_data(stack, check):
    result = stack.prom.query(check.promql)
    assert result, f"{check.name}: {check.promql} returned nothing"


@pytest.mark.parametrize("query", [q for q in dashboard.queries(dashboard.load()) if q.datasource == "prometheus"],
                         ids=lambda q: q.panel)
def test_every_dashboard_panel_query_returns_data(stack, query):
    # Sent the way a panel sends it: a range query with $__rate_interval filled in.
    now = time.time()
    result = stack.prom.query_range(dashboard.interpolate(query.expr, FAST.window), start=now - 120, end=now, step="2s")
    assert result and any(series["values"] for series in result), f"{query.panel}: {query.expr}"


def test_check_command_passes_strict(stack):
    result = stack.cli("check", "--strict", "--json")
    rows = json.loads(result.stdout)
    assert rows and all(r["passed"] for r in rows)
    kinds = {r["kind"] for r in rows}
    assert kinds == {"series", "label", "overflow", "example", "recording", "alert"}
    assert {r["name"] for r in rows if r["kind"] == "alert"} == set(ALERTS)


def test_latency_exemplars_carry_trace_ids(stack):
    now = time.time()
    data = stack.prom.exemplars("scillm_request_latency_seconds_bucket", now - 600, now)
    trace_ids = [e["labels"]["trace_id"] for series in data for e in series["exemplars"]]
    assert trace_ids and all(len(t) == 32 for t in trace_ids)
    log = (stack.home / "logs" / "demo.jsonl").read_text()
    assert trace_ids[-1] in log


def test_no_secret_or_run_id_in_metrics(stack):
    import requests

    metrics = requests.get(f"http://127.0.0.1:{stack.ports['demo']}/metrics", timeout=5).text
    log_lines = [json.loads(line) for line in (stack.home / "logs" / "demo.jsonl").read_text().splitlines()]
    run_ids = {line["run_id"] for line in log_lines if line["event"] == "batch_end"}
    assert run_ids and not any(run_id in metrics for run_id in run_ids)
    everything = metrics + "".join(p.read_text() for p in (stack.home / "logs").glob("*"))
    assert "sk-scillm-demo-" not in everything and "Bearer" not in everything


def test_every_label_value_in_prometheus_is_allowed(stack):
    for metric in contract.METRICS:
        for label in metric.labels:
            sample = metric.counted_sample
            seen = {s["metric"][label.name] for s in stack.prom.query(f"count by ({label.name}) ({sample})")}
            assert seen == set(label.allowed), (sample, label.name, seen)
