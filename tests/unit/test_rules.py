"""The rendered Prometheus rules: valid for promtool, tested by promtool, true to the contract."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from scillm_stack import rules
from scillm_stack.resources import stack_dir
from scillm_stack.spec import TIMINGS, Thresholds

RULES_TEST = stack_dir() / "prometheus" / "tests" / "scillm.rules.test.yml"


def _promtool() -> str:
    """Path of promtool; its absence fails the test instead of skipping it."""
    path = rules.find_promtool()
    if path is None:
        pytest.fail("promtool not found: run `scillm-stack install prometheus` (or apt-get install prometheus) "
                    "so the rule files can be checked and unit-tested")
    return path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output as text."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.promtool
@pytest.mark.parametrize("profile", sorted(TIMINGS))
def test_promtool_check_rules_passes(tmp_path: Path, profile: str) -> None:
    path = rules.write_rules(tmp_path, TIMINGS[profile], Thresholds())
    result = _run(_promtool(), "check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, f"promtool check rules ({profile}) failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.promtool
def test_promtool_unit_tests_pass_on_production_render(tmp_path: Path) -> None:
    rules.write_rules(tmp_path, TIMINGS["production"], Thresholds())
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    result = _run(_promtool(), "test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert result.returncode == 0, f"promtool test rules failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("profile", sorted(TIMINGS))
def test_every_rule_expression_keeps_to_the_contract(profile: str) -> None:
    expressions = rules.rule_expressions(rules.render_rules(TIMINGS[profile], Thresholds()))
    assert len(expressions) == 7
    for name, expr in expressions:
        assert rules.contract_violations(expr) == [], f"{name}: {expr}"


def test_alert_names() -> None:
    assert rules.alert_names() == [
        "SciLLMHighCapacityRetries", "SciLLMLatencyP95High", "SciLLMRouterFallbackSpike",
    ]


@pytest.mark.parametrize(("expr", "culprit"), [
    ('sum(rate(scillm_request_total[5m]))', "scillm_request_total"),  # wrong metric name
    ('sum(rate(scillm_retries_total{reson="timeout"}[5m]))', "'reson'"),  # wrong label name
    ('sum(rate(scillm_retries_total{reason="503"}[5m]))', "'503'"),  # wrong label value
    ('scillm_requests_total{model_tier=~"text|audio"}', "text|audio"),  # wrong value in a regex
    ('scillm_requests_in_flight{le="1"}', "'le'"),  # `le` is free on histogram buckets only
])
def test_contract_violations_are_caught(expr: str, culprit: str) -> None:
    problems = rules.contract_violations(expr)
    assert len(problems) == 1 and culprit in problems[0], problems


def test_contract_violations_skip_buckets_and_recording_rules() -> None:
    assert rules.contract_violations('scillm_request_latency_seconds_bucket{le="1.0", route="direct"}') == []
    assert rules.contract_violations('scillm:requests:rps{anything="goes"}') == []
    assert rules.contract_violations('scillm_retries_total{reason=~"5xx|timeout"}') == []


def test_fast_render_uses_fast_windows_and_env_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCILLM_STACK_ALERT_CAPACITY_RPS", "0.5")
    monkeypatch.setenv("SCILLM_STACK_ALERT_LATENCY_P95_S", "2.5")
    fast = TIMINGS["fast"]
    text = rules.render_rules(fast, Thresholds.from_env())
    exprs = dict(rules.rule_expressions(text))
    assert exprs["SciLLMHighCapacityRetries"] == (
        f'sum(rate(scillm_retries_total{{reason="429_capacity"}}[{fast.capacity_window}])) > 0.5')
    assert exprs["SciLLMLatencyP95High"].endswith(f"[{fast.window}])) by (le)) > 2.5")
    assert exprs["SciLLMRouterFallbackSpike"] == f"sum(rate(scillm_router_fallbacks_total[{fast.window}])) > 1"
    assert f"for: {fast.for_}\n" in text
    assert "[5m]" not in text and "[15m]" not in text
    assert "{{ $value | humanize }}" in text
