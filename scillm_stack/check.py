"""Checks of the live stack, as data: every contract series, seed example, rule and alert.

Each check is a PromQL query plus an expectation in the grafana/oats style (``present``,
``> 0``, ``== 24``). An empty result gets a reason: target down, series never emitted or
label value never seen. ``strict`` also demands that every declared label value was
counted at least once (non-zero) within the lookback window.
"""

from __future__ import annotations

import operator
import time
from dataclasses import asdict, dataclass
from typing import Any

from scillm_stack import contract
from scillm_stack.contract import OVERFLOW
from scillm_stack.errors import PromQLError
from scillm_stack.promql import Prometheus

JOB = "scillm-batch"
_OPS = {">": operator.gt, ">=": operator.ge, "==": operator.eq, "<": operator.lt}


@dataclass(frozen=True)
class Check:
    kind: str  # series | label | overflow | example | recording | alert
    name: str
    promql: str
    expect: str = "present"
    metric: str | None = None
    label: str | None = None
    value: str | None = None


@dataclass
class CheckResult:
    check: Check
    passed: bool
    value: float | None
    reason: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self.check), "passed": self.passed, "observed": self.value,
                "reason": self.reason, "note": self.note}


def contract_checks(*, strict: bool, lookback: str) -> list[Check]:
    """Series counts and every label value of every contract metric."""
    checks: list[Check] = []
    for metric in contract.METRICS:
        for sample, expected in metric.sample_series().items():
            checks.append(Check("series", f"{sample} series", f'count({sample}{{job="{JOB}"}})',
                                f"== {expected}", metric=sample))
        sample = metric.counted_sample
        for label in metric.labels:
            for value in label.allowed:
                selector = f'{sample}{{job="{JOB}",{label.name}="{value}"}}'
                if value == OVERFLOW and OVERFLOW not in label.values:
                    checks.append(Check("overflow", f"{sample}{{{label.name}=other}} stays 0",
                                        f"sum({selector})", "== 0", sample, label.name, value))
                elif strict:
                    checks.append(Check("label", f"{sample}{{{label.name}={value}}} counted",
                                        f"sum(max_over_time({selector}[{lookback}]))", "> 0",
                                        sample, label.name, value))
                else:
                    checks.append(Check("label", f"{sample}{{{label.name}={value}}} exists",
                                        f"sum({selector})", "present", sample, label.name, value))
    return checks


def example_checks(window: str, capacity_window: str) -> list[Check]:
    """The seed's PromQL examples at the stack's windows."""
    return [
        Check("example", "RPS", f"sum(rate(scillm_requests_total[{window}]))"),
        Check("example", "retry rate %",
              f'100 * (sum(rate(scillm_requests_total{{retried="1"}}[{window}])) / '
              f"sum(rate(scillm_requests_total[{window}])))"),
        Check("example", "latency p95 by route",
              f"histogram_quantile(0.95, sum(rate(scillm_request_latency_seconds_bucket[{window}])) by (le, route))"),
        Check("example", "capacity pressure",
              f'sum(rate(scillm_retries_total{{reason="429_capacity"}}[{capacity_window}]))'),
    ]


def rule_checks(prom: Prometheus) -> list[Check]:
    """Every loaded recording rule returns data; every alert's value expression does too."""
    checks = []
    for rule in prom.rules():
        if rule["type"] == "recording":
            checks.append(Check("recording", rule["name"], rule["name"]))
        else:
            value_expr = rule["query"].rsplit(" > ", 1)[0]
            checks.append(Check("alert", rule["name"], value_expr))
    return checks


def _expectation(expect: str, value: float) -> bool:
    op, _, target = expect.partition(" ")
    return _OPS[op](value, float(target))


class Checker:
    """Runs checks against one Prometheus and explains empty results."""

    def __init__(self, prom: Prometheus) -> None:
        self.prom = prom
        self._alerts = {a["labels"].get("alertname"): a["state"] for a in prom.alerts()}

    def target_reason(self) -> str | None:
        ups = self.prom.query(f'up{{job="{JOB}"}}')
        if not ups:
            return f"target down: job {JOB} was never scraped"
        if all(float(s["value"][1]) == 0 for s in ups):
            return f"target down: job {JOB} does not answer /metrics"
        return None

    def empty_reason(self, check: Check) -> str:
        down = self.target_reason()
        if down:
            return down
        if check.metric and not self.prom.query(f'count({{__name__="{check.metric}"}})'):
            return f"series never emitted: {check.metric}"
        if check.label:
            return f"label value never seen: {check.label}={check.value}"
        if check.kind in ("recording", "alert"):
            return "rule has no data yet (no traffic in its window, or not evaluated yet)"
        return "query returned nothing"

    def run(self, check: Check) -> CheckResult:
        try:
            result = self.prom.query(check.promql)
        except PromQLError as exc:
            return CheckResult(check, False, None, reason=str(exc))
        note = f"alert {self._alerts.get(check.name, 'inactive')}" if check.kind == "alert" else ""
        if not result:
            return CheckResult(check, False, None, reason=self.empty_reason(check), note=note)
        value = float(result[0]["value"][1])
        if check.expect == "present":
            return CheckResult(check, True, value, note=note)
        passed = _expectation(check.expect, value)
        reason = "" if passed else f"expected {check.expect}, got {value:g}"
        if not passed and check.kind == "label":
            reason = f"label value never counted: {check.label}={check.value} (0 within the lookback)"
        return CheckResult(check, passed, value, reason=reason, note=note)


def settled_checks(prom: Prometheus, *, wait_s: float, interval_s: float = 2.0, **options: Any) -> list[CheckResult]:
    """Run every check, again every `interval_s` while any fails, for at most `wait_s`.

    A stack that has just started has no rates yet (two scrapes) and no recording-rule
    results (one evaluation after that); waiting here turns those into passes instead of
    reporting a warm-up as a failure. A real failure is still reported after `wait_s`.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            results = run_checks(prom, **options)
        except PromQLError:
            if time.monotonic() >= deadline:
                raise
            results = None
        if results is not None and (all(r.passed for r in results) or time.monotonic() >= deadline):
            return results
        time.sleep(interval_s)


def run_checks(prom: Prometheus, *, window: str, capacity_window: str, strict: bool = False,
               lookback: str = "1h") -> list[CheckResult]:
    """Every check of the stack, in a stable order."""
    checker = Checker(prom)
    checks = [*contract_checks(strict=strict, lookback=lookback), *example_checks(window, capacity_window),
              *rule_checks(prom)]
    return [checker.run(check) for check in checks]
