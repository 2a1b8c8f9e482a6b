"""Unit tests of scillm_stack.telemetry: contract enforcement, env contract, lazy server."""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import string
import subprocess
import sys
import threading
import urllib.request
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from scillm_stack import contract, telemetry
from scillm_stack.contract import OVERFLOW
from scillm_stack.telemetry import MetricsSettings, TelemetryConfigError, TelemetryWarning

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_VARS = (telemetry.ENV_ENABLE, telemetry.ENV_ADDR, telemetry.ENV_PORT)
CONTRACT_SAMPLES = frozenset(name for metric in contract.METRICS for name in metric.sample_names)
OK_LABELS = {"route": "direct", "result": "ok", "retried": "0", "model_tier": "text"}


@pytest.fixture(autouse=True)
def fresh_telemetry(monkeypatch: pytest.MonkeyPatch):
    """Every test starts and ends with no resolved env state and no SCILLM_METRICS* env."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    telemetry._reset_for_tests()
    yield
    telemetry._reset_for_tests()


def contract_sample_count(registry: CollectorRegistry) -> int:
    """Samples of the five contract metrics in the text exposition (no _created, no comments)."""
    count = 0
    for line in generate_latest(registry).decode().splitlines():
        if not line or line.startswith("#"):
            continue
        name = re.split(r"[{ ]", line, maxsplit=1)[0]
        if name.endswith("_created"):
            continue
        assert name in CONTRACT_SAMPLES, f"unexpected sample {name!r}"
        count += 1
    return count


def telemetry_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, TelemetryWarning)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def no_global_scillm_series() -> bool:
    return REGISTRY.get_sample_value("scillm_requests_total", OK_LABELS) is None


# --- contract enforcement ------------------------------------------------------------------

def _random_value(rng: random.Random, label: contract.Label) -> Any:
    kind = rng.randrange(10)
    if kind <= 1:
        return rng.choice(label.values)  # valid
    if kind == 2:
        return OVERFLOW
    if kind == 3:
        alphabet = string.ascii_letters + string.digits + "_- {}\"\\=\n\té"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 16)))
    if kind == 4:
        return rng.randint(-3, 3)
    if kind == 5:
        return None
    if kind == 6:
        return rng.choice(([rng.random()], [], {"a": 1}, {1, 2}))  # unhashable
    if kind == 7:
        return rng.choice((True, False))
    if kind == 8:
        return rng.choice((b"direct", 2.5, float("nan"), object()))
    value = rng.choice(label.values)  # near-misses of valid values
    return rng.choice((value.upper(), f" {value}", f"{value}\n", value + "x"))


def _expected(label: contract.Label, value: Any) -> str:
    """Independent oracle: the series a value must land in."""
    if isinstance(value, str) and value in label.allowed:
        return value
    if label is contract.RETRIED and type(value) in (bool, int) and value in (0, 1):
        return "1" if value else "0"
    return OVERFLOW


def test_random_labels_never_grow_series_and_land_in_overflow() -> None:
    rng = random.Random(20240601)
    registry = CollectorRegistry()
    assert telemetry.init_from_env(registry=registry) is True
    bound = contract.series_bound()
    assert contract_sample_count(registry) == bound

    expected_requests: Counter[tuple[str, ...]] = Counter()
    expected_latency: Counter[tuple[str, str]] = Counter()
    expected_retries: Counter[str] = Counter()
    expected_fallbacks: Counter[str] = Counter()
    expected_in_flight: Counter[str] = Counter()
    overflow_calls: Counter[str] = Counter()

    with warnings.catch_warnings(record=True) as caught, contextlib.ExitStack() as stack:
        warnings.simplefilter("always")
        for _ in range(10_000):
            call = rng.randrange(4)
            if call == 0:
                labels = {label.name: _random_value(rng, label) for label in contract.REQUESTS.labels}
                key = tuple(_expected(label, labels[label.name]) for label in contract.REQUESTS.labels)
                telemetry.record_request(**labels, latency_s=rng.uniform(0, 700), registry=registry)
                expected_requests[key] += 1
                expected_latency[(key[0], key[3])] += 1
                overflow_calls["requests"] += OVERFLOW in key
            elif call == 1:
                reason = _random_value(rng, contract.RETRY_REASON)
                telemetry.record_retry(reason=reason, registry=registry)
                expected_retries[_expected(contract.RETRY_REASON, reason)] += 1
                overflow_calls["retries"] += _expected(contract.RETRY_REASON, reason) == OVERFLOW
            elif call == 2:
                reason = _random_value(rng, contract.FALLBACK_REASON)
                telemetry.record_router_fallback(reason=reason, registry=registry)
                expected_fallbacks[_expected(contract.FALLBACK_REASON, reason)] += 1
                overflow_calls["fallbacks"] += _expected(contract.FALLBACK_REASON, reason) == OVERFLOW
            else:
                route = _random_value(rng, contract.ROUTE)
                stack.enter_context(telemetry.track_in_flight(route=route, registry=registry))
                expected_in_flight[_expected(contract.ROUTE, route)] += 1
                overflow_calls["in_flight"] += _expected(contract.ROUTE, route) == OVERFLOW

        # While every tracked block is still open, each gauge holds its count.
        for route in contract.ROUTE.allowed:
            assert registry.get_sample_value(
                contract.IN_FLIGHT.name, {"route": route}) == expected_in_flight[route]
        assert registry.get_sample_value(
            contract.IN_FLIGHT.name, {"route": OVERFLOW}) == overflow_calls["in_flight"] > 0
        assert contract_sample_count(registry) == bound

    assert telemetry_warnings(caught) == []
    assert contract_sample_count(registry) == bound
    for route in contract.ROUTE.allowed:
        assert registry.get_sample_value(contract.IN_FLIGHT.name, {"route": route}) == 0

    # Every series holds exactly what the oracle says.
    for labels in contract.REQUESTS.label_sets():
        key = tuple(labels[name] for name in contract.REQUESTS.label_names)
        assert registry.get_sample_value(contract.REQUESTS.name, labels) == expected_requests[key], labels
    for labels in contract.LATENCY.label_sets():
        count = registry.get_sample_value(f"{contract.LATENCY.name}_count", labels)
        assert count == expected_latency[(labels["route"], labels["model_tier"])], labels
    for reason in contract.RETRY_REASON.allowed:
        assert registry.get_sample_value(contract.RETRIES.name, {"reason": reason}) == expected_retries[reason]
    for reason in contract.FALLBACK_REASON.allowed:
        assert registry.get_sample_value(
            contract.FALLBACKS.name, {"reason": reason}) == expected_fallbacks[reason]

    # The overflow series counted exactly the invalid calls (+ explicit "other" where declared).
    overflow_requests = sum(
        registry.get_sample_value(contract.REQUESTS.name, labels)
        for labels in contract.REQUESTS.label_sets() if OVERFLOW in labels.values()
    )
    assert overflow_requests == overflow_calls["requests"] > 0
    assert registry.get_sample_value(
        contract.FALLBACKS.name, {"reason": OVERFLOW}) == overflow_calls["fallbacks"] > 0
    explicit_other_retries = expected_retries[OVERFLOW]  # "other" is also a declared retry reason
    assert registry.get_sample_value(
        contract.RETRIES.name, {"reason": OVERFLOW}) == explicit_other_retries >= overflow_calls["retries"] > 0
    assert sum(expected_requests.values()) + sum(expected_retries.values()) + sum(
        expected_fallbacks.values()) + sum(expected_in_flight.values()) == 10_000


def test_every_contract_series_exists_at_zero_from_first_scrape() -> None:
    registry = CollectorRegistry()
    assert telemetry.init_from_env(registry=registry) is True
    assert contract_sample_count(registry) == contract.series_bound()
    for metric in contract.METRICS:
        for labels in metric.label_sets():
            if metric.type == "histogram":
                for le in (*map(float, contract.LATENCY_BUCKETS), float("inf")):
                    bucket = {**labels, "le": str(le) if le != float("inf") else "+Inf"}
                    assert registry.get_sample_value(f"{metric.name}_bucket", bucket) == 0.0, bucket
                assert registry.get_sample_value(f"{metric.name}_count", labels) == 0.0
                assert registry.get_sample_value(f"{metric.name}_sum", labels) == 0.0
            else:
                assert registry.get_sample_value(metric.name, labels) == 0.0, (metric.name, labels)


@pytest.mark.parametrize(("value", "series"), [
    ("0", "0"), ("1", "1"), (True, "1"), (False, "0"), (0, "0"), (1, "1"),
])
def test_retried_accepts_strings_bools_and_ints(value: Any, series: str) -> None:
    registry = CollectorRegistry()
    telemetry.record_request(route="router", result="ok", retried=value, model_tier="vlm", registry=registry)
    labels = {"route": "router", "result": "ok", "model_tier": "vlm"}
    assert registry.get_sample_value(contract.REQUESTS.name, {**labels, "retried": series}) == 1
    other = "0" if series == "1" else "1"
    assert registry.get_sample_value(contract.REQUESTS.name, {**labels, "retried": other}) == 0
    assert registry.get_sample_value(contract.REQUESTS.name, {**labels, "retried": OVERFLOW}) == 0


def test_trace_id_becomes_an_exemplar_in_openmetrics_only() -> None:
    registry = CollectorRegistry()
    telemetry.record_request(route="direct", result="ok", retried="0", model_tier="text",
                             latency_s=0.3, trace_id="abc123", registry=registry)
    openmetrics = generate_openmetrics(registry).decode()
    exemplar_lines = [line for line in openmetrics.splitlines() if '# {trace_id="abc123"}' in line]
    assert exemplar_lines, openmetrics
    assert all(line.startswith(f"{contract.LATENCY.name}_bucket{{") for line in exemplar_lines)
    assert any('le="0.5"' in line for line in exemplar_lines)
    assert "trace_id" not in generate_latest(registry).decode()


# --- env contract --------------------------------------------------------------------------

def test_settings_defaults() -> None:
    settings = MetricsSettings.from_env({"SCILLM_METRICS": "prom"})
    assert settings == MetricsSettings(enabled=True, addr="0.0.0.0", port=9464)
    assert MetricsSettings.from_env({"SCILLM_METRICS": "prom", "SCILLM_METRICS_ADDR": "",
                                     "SCILLM_METRICS_PORT": ""}) == settings
    custom = MetricsSettings.from_env({"SCILLM_METRICS": "prom", "SCILLM_METRICS_ADDR": "127.0.0.1",
                                       "SCILLM_METRICS_PORT": "9999"})
    assert (custom.addr, custom.port) == ("127.0.0.1", 9999)


@pytest.mark.parametrize("mode", ["prom", "prometheus", "PROM", "Prometheus", " prom "])
def test_settings_enable_values(mode: str) -> None:
    assert MetricsSettings.from_env({"SCILLM_METRICS": mode}).enabled is True


@pytest.mark.parametrize("env", [{}, {"SCILLM_METRICS": ""}, {"SCILLM_METRICS": "   "}])
def test_settings_unset_or_empty_disables(env: dict[str, str]) -> None:
    assert MetricsSettings.from_env(env).enabled is False


def test_settings_unknown_mode_names_the_variable() -> None:
    with pytest.raises(TelemetryConfigError) as info:
        MetricsSettings.from_env({"SCILLM_METRICS": "yes-please"})
    assert re.search(r"\bSCILLM_METRICS\b", str(info.value))
    assert "yes-please" in str(info.value)


@pytest.mark.parametrize("port", ["abc", "0", "70000", "-1", "94 64", "²", "9464.0"])
def test_settings_bad_port_names_the_variable(port: str) -> None:
    with pytest.raises(TelemetryConfigError) as info:
        MetricsSettings.from_env({"SCILLM_METRICS": "prom", "SCILLM_METRICS_PORT": port})
    assert "SCILLM_METRICS_PORT" in str(info.value)


# --- process-level lazy server -------------------------------------------------------------

def _enable_env(monkeypatch: pytest.MonkeyPatch, port: Any, addr: str = "127.0.0.1") -> None:
    monkeypatch.setenv("SCILLM_METRICS", "prom")
    monkeypatch.setenv("SCILLM_METRICS_ADDR", addr)
    monkeypatch.setenv("SCILLM_METRICS_PORT", str(port))


def _call_everything() -> None:
    telemetry.record_request(**OK_LABELS, latency_s=0.2)
    telemetry.record_request(**OK_LABELS, latency_s=0.2, trace_id="t1")
    telemetry.record_retry(reason="timeout")
    telemetry.record_router_fallback(reason="5xx")
    with telemetry.track_in_flight(route="direct"):
        pass


@pytest.mark.timeout(60)
def test_env_server_starts_once_on_first_use_from_16_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    _enable_env(monkeypatch, port)
    starts: list[int] = []
    real_start = telemetry._start_server

    def counting_start(settings: MetricsSettings, registry: Any) -> Any:
        starts.append(settings.port)
        return real_start(settings, registry)

    monkeypatch.setattr(telemetry, "_start_server", counting_start)
    assert telemetry.metrics_endpoint() is None
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            telemetry.record_request(**OK_LABELS, latency_s=0.1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=worker) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert starts == [port]
        assert telemetry.metrics_endpoint() == f"127.0.0.1:{port}"

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
        line = 'scillm_requests_total{model_tier="text",result="ok",retried="0",route="direct"} 16.0'
        assert line in body

        # Later calls (and init_from_env) reuse the running server.
        assert telemetry.init_from_env() is True
        _call_everything()
        assert starts == [port]
        assert REGISTRY.get_sample_value("scillm_requests_total", OK_LABELS) == 18
        assert REGISTRY.get_sample_value("scillm_retries_total", {"reason": "timeout"}) == 1
    assert telemetry_warnings(caught) == []


def _assert_metrics_off_with_one_warning(expect_in_message: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _call_everything()
        assert telemetry.init_from_env() is False
        _call_everything()
    messages = telemetry_warnings(caught)
    assert len(messages) == 1, messages
    assert expect_in_message in messages[0]
    assert telemetry.metrics_endpoint() is None
    assert no_global_scillm_series()


def test_env_bad_port_warns_once_and_calls_are_noops(monkeypatch: pytest.MonkeyPatch) -> None:
    _enable_env(monkeypatch, "abc")
    _assert_metrics_off_with_one_warning("SCILLM_METRICS_PORT")


def test_env_unknown_mode_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCILLM_METRICS", "yes-please")
    _assert_metrics_off_with_one_warning("SCILLM_METRICS=")


def test_env_port_in_use_warns_once_and_metrics_off(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        _enable_env(monkeypatch, port)
        _assert_metrics_off_with_one_warning(f"127.0.0.1:{port}")


def test_env_unbindable_address_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _enable_env(monkeypatch, free_port(), addr="203.0.113.7")  # TEST-NET-3: not an address of this host
    _assert_metrics_off_with_one_warning("203.0.113.7")


def test_env_unset_is_silent_and_off() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _call_everything()
        assert telemetry.init_from_env() is False
    assert telemetry_warnings(caught) == []
    assert no_global_scillm_series()
    # The no-op tracker of the disabled path yields None and lets exceptions through.
    with pytest.raises(KeyError, match="boom"):
        with telemetry.track_in_flight(route="direct") as entered:
            assert entered is None
            raise KeyError("boom")


# --- no prometheus-client ------------------------------------------------------------------

NO_PROMETHEUS = r"""
import os, sys
sys.modules["prometheus_client"] = None
os.environ["SCILLM_METRICS"] = "prom"
os.environ["SCILLM_METRICS_PORT"] = "9464"
from scillm_stack import telemetry as t
assert t._ms is None
assert t.init_from_env() is False
assert t.init_from_env(registry=object()) is False
t.record_request(route="direct", result="ok", retried="0", model_tier="text")
t.record_request(route="router", result="error", retried=True, model_tier="vlm", latency_s=1.5, trace_id="abc")
t.record_request(route=["bad"], result=None, retried=7, model_tier={}, latency_s="nan?")
t.record_retry(reason="429_capacity")
t.record_router_fallback(reason="unreachable")
t.record_retry(reason="timeout", registry=object())
with t.track_in_flight(route="direct"):
    pass
with t.track_in_flight(route="router", registry=object()):
    pass
assert t.metrics_endpoint() is None
assert t.MetricsSettings.from_env().enabled is True
t._reset_for_tests()
assert t.init_from_env() is False
print("all calls returned")
"""


def test_without_prometheus_client_every_call_is_a_silent_noop() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCILLM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO_ROOT), env.get("PYTHONPATH"))))
    proc = subprocess.run([sys.executable, "-W", "default", "-c", NO_PROMETHEUS], env=env,
                          capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.strip() == "all calls returned"


# --- failing calls -------------------------------------------------------------------------

def test_failing_metric_call_never_raises_and_warns_once() -> None:
    registry = CollectorRegistry()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        telemetry.record_request(**OK_LABELS, latency_s="not-a-number", registry=registry)  # type: ignore[arg-type]
        telemetry.record_request(**OK_LABELS, latency_s=[1], registry=registry)  # type: ignore[arg-type]
        telemetry.record_request(**OK_LABELS, latency_s=0.25, registry=registry)
    messages = telemetry_warnings(caught)
    assert len(messages) == 1, messages
    assert "failed" in messages[0]
    # The call after the failures is recorded normally.
    assert registry.get_sample_value(f"{contract.LATENCY.name}_count",
                                     {"route": "direct", "model_tier": "text"}) == 1
    assert registry.get_sample_value(f"{contract.LATENCY.name}_sum",
                                     {"route": "direct", "model_tier": "text"}) == 0.25


# --- the fast updaters match prometheus-client's public methods ------------------------------

def _public_registry() -> tuple[CollectorRegistry, dict[str, Any]]:
    """The contract's metrics driven only through prometheus-client's public API."""
    from prometheus_client import Counter, Gauge, Histogram

    registry = CollectorRegistry()
    c = contract
    families = {
        "requests": Counter(c.REQUESTS.name, c.REQUESTS.help, c.REQUESTS.label_names, registry=registry),
        "latency": Histogram(c.LATENCY.name, c.LATENCY.help, c.LATENCY.label_names,
                             buckets=c.LATENCY_BUCKETS, registry=registry),
        "retries": Counter(c.RETRIES.name, c.RETRIES.help, c.RETRIES.label_names, registry=registry),
        "fallbacks": Counter(c.FALLBACKS.name, c.FALLBACKS.help, c.FALLBACKS.label_names, registry=registry),
        "in_flight": Gauge(c.IN_FLIGHT.name, c.IN_FLIGHT.help, c.IN_FLIGHT.label_names, registry=registry),
    }
    for key, metric in zip(families, contract.METRICS):
        for labels in metric.label_sets():
            families[key].labels(**labels)
    return registry, families


def _exposition_without_created(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines()
            if not re.match(r"^(# \w+ )?\w+_created\b", line)]


def test_fast_updaters_expose_exactly_what_the_public_api_does() -> None:
    fast = CollectorRegistry()
    public, families = _public_registry()
    latencies = [0.0, 0.01, 0.0100001, -1.0, 0.123, 2.0, 5, True, 600.0, 600.0001, 1e300,
                 float("inf"), float("nan"), 0.05]
    for index, latency in enumerate(latencies):
        route, tier = ("direct", "router")[index % 2], ("text", "vlm", "tools")[index % 3]
        telemetry.record_request(route=route, result="ok", retried=index % 2, model_tier=tier,
                                 latency_s=latency, trace_id=f"t{index}" if index % 4 == 0 else None,
                                 registry=fast)
        families["requests"].labels(route=route, result="ok", retried=str(index % 2), model_tier=tier).inc()
        families["latency"].labels(route=route, model_tier=tier).observe(latency)
        reason = contract.FALLBACK_REASON.values[index % 5]
        telemetry.record_router_fallback(reason=reason, registry=fast)
        families["fallbacks"].labels(reason=reason).inc()
        telemetry.record_retry(reason=reason, registry=fast)  # "unreachable" overflows to other
        families["retries"].labels(reason=reason if reason != "unreachable" else OVERFLOW).inc()
    with telemetry.track_in_flight(route="router", registry=fast), \
            telemetry.track_in_flight(route="router", registry=fast):
        families["in_flight"].labels(route="router").inc(2)
        assert _exposition_without_created(fast) == _exposition_without_created(public)
    families["in_flight"].labels(route="router").dec(2)
    assert _exposition_without_created(fast) == _exposition_without_created(public)
    # ...and the fast path was the one taken (not the public-method fallback).
    count, observe = telemetry._sets[fast].requests[("direct", "ok", "0", "text")]
    assert type(getattr(count, "__self__", None)).__name__ in ("MutexValue", "MmapedValue")
    assert getattr(observe, "__self__", None) is None


def test_updaters_fall_back_to_public_methods_without_value_internals() -> None:
    from scillm_stack import metricset

    class Child:  # a child exposing only the public API
        def __init__(self) -> None:
            self.calls: list[tuple[str, Any]] = []

        def inc(self, amount: float = 1) -> None:
            self.calls.append(("inc", amount))

        def observe(self, amount: float, exemplar: Any = None) -> None:
            self.calls.append(("observe", amount))

    child = Child()
    metricset._adder(child)(1)
    metricset._observer(child)(0.5)
    with metricset.InFlight(child):  # type: ignore[arg-type]
        pass
    assert child.calls == [("inc", 1), ("observe", 0.5), ("inc", 1), ("inc", -1)]
