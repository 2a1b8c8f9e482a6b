"""The Prometheus rule file: rendered from its template, parsed, and checked against the contract."""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

import yaml

from scillm_stack import contract
from scillm_stack.resources import stack_dir
from scillm_stack.spec import TIMINGS, Thresholds, Timing

RULES_FILE = "scillm.rules.yml"

# A string literal (skipped, so names inside values are not read as metrics) or a metric
# name with its optional `{...}` matcher block.
_TOKEN = re.compile(
    r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`"""
    r"""|(?<![\w:.])(?P<name>[A-Za-z_:][\w:]*)\s*(?P<matchers>\{(?:"(?:[^"\\]|\\.)*"|[^}"])*\})?"""
)
_MATCHER = re.compile(r"""(?P<label>[A-Za-z_]\w*)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)\"""")
_LITERAL_ALTERNATION = re.compile(r"[\w.+-]+(?:\|[\w.+-]+)*")


def template_path() -> Path:
    """Where the rule file template lives."""
    return stack_dir() / "prometheus" / "rules" / f"{RULES_FILE}.tmpl"


def render_rules(timing: Timing, thresholds: Thresholds) -> str:
    """The rule file text for one timing profile and set of thresholds."""
    template = Template(template_path().read_text(encoding="utf-8"))
    return template.substitute({
        "window": timing.window,
        "capacity_window": timing.capacity_window,
        "for": timing.for_,
        "capacity_retry_rps": format(thresholds.capacity_retry_rps, "g"),
        "latency_p95_s": format(thresholds.latency_p95_s, "g"),
        "fallback_rps": format(thresholds.fallback_rps, "g"),
    })


def write_rules(dest_dir: Path, timing: Timing, thresholds: Thresholds) -> Path:
    """Render the rules into `dest_dir/scillm.rules.yml` and return that path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / RULES_FILE
    path.write_text(render_rules(timing, thresholds), encoding="utf-8")
    return path


def _rules(text: str) -> list[dict[str, object]]:
    """Every rule of every group in a rule file's text."""
    doc = yaml.safe_load(text) or {}
    return [rule for group in doc.get("groups", []) for rule in group.get("rules", [])]


def alert_names() -> list[str]:
    """Names of the alerts the rule file defines, in file order."""
    text = render_rules(TIMINGS["production"], Thresholds())
    return [str(rule["alert"]) for rule in _rules(text) if "alert" in rule]


def rule_expressions(text: str) -> list[tuple[str, str]]:
    """(record or alert name, expression) of every rule in a rule file's text."""
    return [(str(rule.get("record") or rule.get("alert")), str(rule["expr"])) for rule in _rules(text)]


def _value_violation(sample: str, label: str, op: str, value: str, allowed: tuple[str, ...]) -> str | None:
    """Why one matcher's value cannot select a contract series, or None if it can."""
    if op in ("=", "!="):
        ok = value in allowed
    elif _LITERAL_ALTERNATION.fullmatch(value):
        ok = all(part in allowed for part in value.split("|"))
    else:
        try:
            ok = any(re.fullmatch(value, candidate) for candidate in allowed)
        except re.error:
            ok = False
    if ok:
        return None
    return f"{sample}: {label}{op}{value!r} is not allowed (allowed: {', '.join(allowed)})"


def contract_violations(expr: str) -> list[str]:
    """Metric names, label names and label values in `expr` that the contract does not allow."""
    problems: list[str] = []
    for token in _TOKEN.finditer(expr):
        sample = token.group("name")
        if not sample or not sample.startswith("scillm_") or ":" in sample:
            continue  # string literal, function/keyword, or a recording rule name
        metric = contract.metric_by_sample_name(sample)
        if metric is None:
            problems.append(f"{sample}: not a sample of any contract metric")
            continue
        for matcher in _MATCHER.finditer(token.group("matchers") or ""):
            label, op, value = matcher.group("label", "op", "value")
            if label == "le" and metric.type == "histogram" and sample.endswith("_bucket"):
                continue
            try:
                allowed = contract.allowed_values(metric, label)
            except KeyError:
                problems.append(f"{sample}: no label {label!r} (labels: {', '.join(metric.label_names)})")
                continue
            problem = _value_violation(sample, label, op, value, allowed)
            if problem:
                problems.append(problem)
    return problems


def find_promtool() -> str | None:
    """Path of `promtool`: the installed Prometheus first, else a fitting one on PATH."""
    from scillm_stack import binaries, spec

    located = binaries.locate(spec.PROMETHEUS, "promtool")
    return str(located.path) if located else None
