"""The instrumented demo client against the real FakeUpstream: every signal, exact counts."""

from __future__ import annotations

import io
import threading
import time
import urllib.request
from typing import Any, Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from scillm_stack import contract, telemetry
from scillm_stack.demo.client import ClientConfig, CompletionError, SciLLMClient
from scillm_stack.demo.upstream import DEPLOYMENTS, FakeUpstream
from scillm_stack.load import BatchLog, LoadPlan, demo_api_key, run_load
from scillm_stack.scenarios import SCENARIOS

MESSAGES = [{"role": "user", "content": "hello"}]
API_KEY = "sk-unit-test-0123456789abcdef"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream(seed=1234).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def healthy(upstream: FakeUpstream) -> None:
    for name in DEPLOYMENTS:
        upstream.set_profile(name, {}, reset=True)


@pytest.fixture()
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def make_client(upstream: FakeUpstream, registry: CollectorRegistry, **config: Any) -> SciLLMClient:
    config.setdefault("timeout_s", 0.3)
    return SciLLMClient(ClientConfig(base_url=upstream.url, api_key=API_KEY, **config),
                        registry=registry, sleep=lambda s: None)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    sample = registry.get_sample_value(name, labels)
    assert sample is not None, (name, labels)
    return sample


def requests_total(registry: CollectorRegistry, route: str, result: str, retried: str,
                   tier: str = "text") -> float:
    return value(registry, contract.REQUESTS.name, route=route, result=result, retried=retried, model_tier=tier)


def all_requests(registry: CollectorRegistry) -> float:
    return sum(value(registry, contract.REQUESTS.name, **labels) for labels in contract.REQUESTS.label_sets())


def retries(registry: CollectorRegistry) -> dict[str, float]:
    return {r: value(registry, contract.RETRIES.name, reason=r) for r in contract.RETRY_REASON.allowed}


def fallbacks(registry: CollectorRegistry) -> dict[str, float]:
    return {r: value(registry, contract.FALLBACKS.name, reason=r) for r in contract.FALLBACK_REASON.allowed}


def in_flight(registry: CollectorRegistry, route: str) -> float:
    return value(registry, contract.IN_FLIGHT.name, route=route)


def only(reasons: dict[str, float], **expected: float) -> dict[str, float]:
    """`reasons` with every reason not named expected at zero."""
    return {reason: expected.get(reason, 0.0) for reason in reasons}


def stats_delta(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {name: {k: v - before[name].get(k, 0) for k, v in counts.items() if v - before[name].get(k, 0)}
            for name, counts in after.items()}


def test_direct_healthy(upstream: FakeUpstream, registry: CollectorRegistry) -> None:
    outcome = make_client(upstream, registry).completion(MESSAGES, route="direct", model_tier="text")
    assert (outcome.result, outcome.retried, outcome.attempts, outcome.deployment) == ("ok", False, 1, "alpha")
    assert requests_total(registry, "direct", "ok", "0") == 1
    assert all_requests(registry) == 1
    assert retries(registry) == only(retries(registry))
    assert fallbacks(registry) == only(fallbacks(registry))
    assert in_flight(registry, "direct") == 0 and in_flight(registry, "router") == 0
    latency = {"route": "direct", "model_tier": "text"}
    assert value(registry, f"{contract.LATENCY.name}_count", **latency) == 1
    assert 0 < value(registry, f"{contract.LATENCY.name}_sum", **latency) < 5


@pytest.mark.parametrize(("profile", "upstream_outcome", "reason"), [
    ({"p_429": 1.0}, "429", "429_capacity"),
    ({"p_503": 1.0}, "503", "429_capacity"),
    ({"p_5xx": 1.0}, "5xx", "5xx"),
    ({"p_timeout": 1.0, "stall_s": 1.0}, "timeout", "timeout"),
    ({"dead": True}, "dead", "other"),
    ({"p_bad": 1.0}, "bad", "other"),
])
def test_direct_failures_count_retries_by_reason(upstream: FakeUpstream, registry: CollectorRegistry,
                                                 profile: dict[str, Any], upstream_outcome: str,
                                                 reason: str) -> None:
    upstream.set_profile("alpha", profile, reset=True)
    client = make_client(upstream, registry)
    max_attempts = client.config.max_attempts
    before = upstream.stats()
    with pytest.raises(CompletionError) as info:
        client.completion(MESSAGES, route="direct", model_tier="tools")
    outcome = info.value.outcome
    assert (outcome.result, outcome.retried, outcome.attempts) == ("error", True, max_attempts)
    assert outcome.retries == [reason] * (max_attempts - 1)
    assert stats_delta(before, upstream.stats()) == {"alpha": {upstream_outcome: max_attempts},
                                                     "beta": {}, "gamma": {}}
    assert requests_total(registry, "direct", "error", "1", "tools") == 1
    assert all_requests(registry) == 1
    assert retries(registry) == only(retries(registry), **{reason: max_attempts - 1})
    assert fallbacks(registry) == only(fallbacks(registry))
    assert in_flight(registry, "direct") == 0


def test_direct_not_tenacious_makes_one_attempt(upstream: FakeUpstream, registry: CollectorRegistry) -> None:
    upstream.set_profile("alpha", {"p_5xx": 1.0}, reset=True)
    with pytest.raises(CompletionError):
        make_client(upstream, registry).completion(MESSAGES, route="direct", tenacious=False)
    assert requests_total(registry, "direct", "error", "0") == 1
    assert retries(registry) == only(retries(registry))


def test_direct_recovers_after_retries(upstream: FakeUpstream, registry: CollectorRegistry) -> None:
    upstream.set_profile("alpha", {"p_429": 1.0}, reset=True)
    client = make_client(upstream, registry)
    calls: list[float] = []

    def heal_then_sleep(seconds: float) -> None:  # the backoff hook: heal alpha after 2 retries
        calls.append(seconds)
        if len(calls) == 2:
            upstream.set_profile("alpha", {}, reset=True)

    client._sleep = heal_then_sleep
    outcome = client.completion(MESSAGES, route="direct", model_tier="vlm")
    assert (outcome.result, outcome.attempts) == ("ok", 3)
    assert requests_total(registry, "direct", "ok", "1", "vlm") == 1
    assert retries(registry) == only(retries(registry), **{"429_capacity": 2})
    assert all(0 < s <= client.config.backoff_max_s for s in calls)


def test_router_falls_back_to_healthy_deployment(upstream: FakeUpstream, registry: CollectorRegistry) -> None:
    upstream.set_profile("alpha", {"dead": True}, reset=True)
    upstream.set_profile("beta", {"p_5xx": 1.0}, reset=True)
    outcome = make_client(upstream, registry).completion(MESSAGES, route="router", model_tier="text")
    assert (outcome.result, outcome.retried, outcome.deployment) == ("ok", False, "gamma")
    assert outcome.fallbacks == ["unreachable", "5xx"]
    assert requests_total(registry, "router", "ok", "0") == 1
    assert all_requests(registry) == 1
    assert fallbacks(registry) == only(fallbacks(registry), unreachable=1, **{"5xx": 1})
    assert retries(registry) == only(retries(registry))
    assert in_flight(registry, "router") == 0


@pytest.mark.parametrize("router_passes", [1, 2, 3])
def test_router_all_failing(upstream: FakeUpstream, registry: CollectorRegistry, router_passes: int) -> None:
    upstream.set_profile("alpha", {"dead": True}, reset=True)
    upstream.set_profile("beta", {"p_429": 1.0}, reset=True)
    upstream.set_profile("gamma", {"p_5xx": 1.0}, reset=True)
    client = make_client(upstream, registry, router_passes=router_passes)
    deployments = len(client.config.deployments)
    with pytest.raises(CompletionError) as info:
        client.completion(MESSAGES, route="router", model_tier="vlm")
    outcome = info.value.outcome
    assert outcome.attempts == deployments * router_passes
    retried = "1" if router_passes > 1 else "0"
    assert requests_total(registry, "router", "error", retried, "vlm") == 1
    assert all_requests(registry) == 1
    counted = fallbacks(registry)
    assert sum(counted.values()) == (deployments - 1) * router_passes
    assert counted == only(counted, unreachable=router_passes, **{"429_capacity": router_passes})
    # A pass ends on gamma's 5xx: that is the reason of each retry between passes.
    assert retries(registry) == only(retries(registry), **{"5xx": router_passes - 1})
    assert in_flight(registry, "router") == 0


def test_in_flight_gauge_tracks_running_calls(upstream: FakeUpstream, registry: CollectorRegistry) -> None:
    upstream.set_profile("alpha", {"latency_ms": 2000.0, "latency_sigma": 0.0}, reset=True)
    client = make_client(upstream, registry, timeout_s=10.0)
    routes = ("direct", "router", "router")
    threads = [threading.Thread(target=client.completion, args=(MESSAGES,), kwargs={"route": r})
               for r in routes]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    seen = (0.0, 0.0)
    while time.monotonic() - started < 1.5:
        seen = (in_flight(registry, "direct"), in_flight(registry, "router"))
        if seen == (1, 2):
            break
        time.sleep(0.01)
    assert seen == (1, 2)
    assert in_flight(registry, "other") == 0
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert (in_flight(registry, "direct"), in_flight(registry, "router")) == (0, 0)
    assert requests_total(registry, "direct", "ok", "0") == 1
    assert requests_total(registry, "router", "ok", "0") == 2
    assert value(registry, f"{contract.LATENCY.name}_bucket", route="router", model_tier="text", le="1.0") == 0
    assert value(registry, f"{contract.LATENCY.name}_bucket", route="router", model_tier="text", le="5.0") == 2


def test_in_flight_returns_to_zero_when_the_call_raises(upstream: FakeUpstream,
                                                         registry: CollectorRegistry) -> None:
    client = make_client(upstream, registry)

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug in the transport")

    client._call = boom  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        client.completion(MESSAGES, route="direct")
    assert in_flight(registry, "direct") == 0
    assert requests_total(registry, "direct", "error", "0") == 1  # a call that raised is no success
    assert all_requests(registry) == 1


def test_api_key_never_reaches_metrics_or_logs(upstream: FakeUpstream, registry: CollectorRegistry,
                                               tmp_path: Any) -> None:
    key = demo_api_key()
    secret = key.split("sk-scillm-demo-", 1)[1]
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        echo = io.StringIO()
        log_path = tmp_path / "load.jsonl"
        log = BatchLog(log_path, echo=echo, echo_requests=True)
        try:
            summary = run_load(LoadPlan(SCENARIOS["chaos"], rps=40, duration_s=1.0, max_requests=25, seed=3),
                               upstream_url=upstream.url, api_key=key, log=log, registry=registry,
                               client_config={"timeout_s": 0.3, "backoff_s": 0.001})
        finally:
            log.close()
        assert summary.requests > 0
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics_text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert "scillm_requests_total" in metrics_text
    assert all_requests(registry) == summary.requests
    log_text = log_path.read_text()
    assert '"event":"batch_end"' in log_text and '"event":"request"' in log_text
    for text in (metrics_text, generate_latest(registry).decode(), log_text, echo.getvalue()):
        assert key not in text
        assert secret not in text
        assert "Bearer" not in text


def test_no_global_registry_use_with_explicit_registry(upstream: FakeUpstream, registry: CollectorRegistry,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A client given a registry never resolves the env (no server, no global metrics)."""
    monkeypatch.setenv("SCILLM_METRICS", "yes-please")
    telemetry._reset_for_tests()
    try:
        make_client(upstream, registry).completion(MESSAGES, route="direct")
        assert telemetry._resolved is False
        assert requests_total(registry, "direct", "ok", "0") == 1
    finally:
        telemetry._reset_for_tests()


def test_upstream_adds_no_latency_of_its_own(upstream: FakeUpstream, registry: CollectorRegistry) -> None:
    """Keep-alive answers take the scripted latency, not a Nagle/delayed-ACK stall (~40 ms)."""
    upstream.set_profile("alpha", {"latency_ms": 1.0, "latency_sigma": 0.0}, reset=True)
    client = make_client(upstream, registry, timeout_s=5.0)
    latencies = sorted(client.completion(MESSAGES, route="direct").latency_s for _ in range(11))
    assert latencies[5] < 0.025, latencies
