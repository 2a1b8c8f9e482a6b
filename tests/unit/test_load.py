"""Bounded load runs of every scenario: stop by themselves, log batches, cover the contract."""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from scillm_stack import contract
from scillm_stack.demo.upstream import FakeUpstream
from scillm_stack.load import BatchLog, LoadPlan, LoadSummary, run_load
from scillm_stack.scenarios import SCENARIOS

API_KEY = "sk-unit-load-0123456789"
FAST_CLIENT = {"timeout_s": 0.3, "backoff_s": 0.001, "backoff_max_s": 0.01}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream(seed=99).start()
    yield server
    server.stop()


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run(upstream: FakeUpstream, plan: LoadPlan, registry: CollectorRegistry, log_path: Path) -> LoadSummary:
    log = BatchLog(log_path, echo=io.StringIO())
    try:
        return run_load(plan, upstream_url=upstream.url, api_key=API_KEY, log=log, registry=registry,
                        client_config=FAST_CLIENT)
    finally:
        log.close()


@pytest.mark.timeout(30)
def test_bounded_run_stops_by_itself_and_logs_the_batch(upstream: FakeUpstream, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    log_path = tmp_path / "batch.jsonl"
    started = time.monotonic()
    summary = run(upstream, LoadPlan(SCENARIOS["steady"], rps=50, duration_s=1.0, max_requests=20, seed=1),
                  registry, log_path)
    assert time.monotonic() - started < 10
    assert 0 < summary.requests <= 20
    assert summary.status == "ok"

    lines = read_log(log_path)
    events = Counter(line["event"] for line in lines)
    assert events == {"batch_start": 1, "batch_end": 1, "request": summary.requests}
    start, end = lines[0], lines[-1]
    assert (start["event"], end["event"]) == ("batch_start", "batch_end")
    assert start["run_id"] == end["run_id"] == summary.run_id
    assert {line["run_id"] for line in lines} == {summary.run_id}
    assert end["requests"] == summary.requests
    assert sum(end["counts"].values()) == summary.requests
    assert sum(end["routes"].values()) == summary.requests
    assert len({line["trace_id"] for line in lines if line["event"] == "request"}) == summary.requests

    metrics_text = generate_latest(registry).decode()
    assert summary.run_id not in metrics_text
    total = sum(registry.get_sample_value(contract.REQUESTS.name, labels)
                for labels in contract.REQUESTS.label_sets())
    assert total == summary.requests


def test_stop_event_interrupts_a_long_run(upstream: FakeUpstream, tmp_path: Path) -> None:
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    log = BatchLog(tmp_path / "stop.jsonl", echo=None)
    started = time.monotonic()
    try:
        summary = run_load(LoadPlan(SCENARIOS["steady"], rps=20, duration_s=120.0, seed=2),
                           upstream_url=upstream.url, api_key=API_KEY, log=log,
                           registry=CollectorRegistry(), stop=stop, client_config=FAST_CLIENT)
    finally:
        timer.cancel()
        log.close()
    assert time.monotonic() - started < 10
    assert summary.status == "interrupted"
    assert read_log(tmp_path / "stop.jsonl")[-1]["status"] == "interrupted"


class InFlightSampler:
    """Polls the in-flight gauges of some registries and remembers the maximum per route."""

    def __init__(self) -> None:
        self.registries: list[CollectorRegistry] = []
        self.max: dict[str, float] = defaultdict(float)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.005):
            for registry in list(self.registries):
                for route in contract.ROUTE.values:
                    sample = registry.get_sample_value(contract.IN_FLIGHT.name, {"route": route}) or 0.0
                    self.max[route] = max(self.max[route], sample)

    def __enter__(self) -> InFlightSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def label_totals(registries: list[CollectorRegistry], metric: contract.Metric) -> dict[tuple[str, str], float]:
    """(label, value) -> summed samples over every series of `metric` in `registries`."""
    sample_name = f"{metric.name}_count" if metric.type == "histogram" else metric.name
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for registry in registries:
        for labels in metric.label_sets():
            sample = registry.get_sample_value(sample_name, labels) or 0.0
            for name, value in labels.items():
                totals[(name, value)] += sample
    return totals


SCENARIO_PLANS = {  # name -> (rps, duration_s); short, but long enough for every phase
    "steady": (40, 1.0),
    "burst": (20, 1.5),
    "capacity-429": (40, 1.5),
    "latency-spike": (20, 1.0),
    "fallback-storm": (40, 1.5),
    "chaos": (40, 3.0),
}


@pytest.mark.timeout(90)
def test_all_scenarios_cover_every_declared_label_value(upstream: FakeUpstream, tmp_path: Path) -> None:
    assert set(SCENARIO_PLANS) == set(SCENARIOS)
    registries: dict[str, list[CollectorRegistry]] = defaultdict(list)
    summaries: list[LoadSummary] = []
    with InFlightSampler() as sampler:
        for index, (name, (rps, duration_s)) in enumerate(SCENARIO_PLANS.items()):
            registry = CollectorRegistry()
            registries[name].append(registry)
            sampler.registries.append(registry)
            plan = LoadPlan(SCENARIOS[name], rps=rps, duration_s=duration_s, seed=index)
            summaries.append(run(upstream, plan, registry, tmp_path / f"{name}.jsonl"))

        # Chaos alone must show every retry and fallback reason; run it again if a rare one is missing.
        for extra in range(3):
            chaos = registries["chaos"]
            if all(label_totals(chaos, m)[("reason", r)] > 0
                   for m in (contract.RETRIES, contract.FALLBACKS) for r in m.labels[0].values):
                break
            registry = CollectorRegistry()
            chaos.append(registry)
            plan = LoadPlan(SCENARIOS["chaos"], rps=40, duration_s=3.0, seed=100 + extra)
            summaries.append(run(upstream, plan, registry, tmp_path / f"chaos-{extra}.jsonl"))

    every = [r for regs in registries.values() for r in regs]
    assert all(summary.requests > 0 for summary in summaries)

    # Every declared (non-overflow) value of every counted label is non-zero somewhere.
    missing = []
    for metric in (contract.REQUESTS, contract.LATENCY, contract.RETRIES, contract.FALLBACKS):
        totals = label_totals(every, metric)
        missing += [(metric.name, label.name, value)
                    for label in metric.labels for value in label.values if totals[(label.name, value)] == 0]
    assert missing == []
    assert {route: sampler.max[route] > 0 for route in contract.ROUTE.values} == {"direct": True, "router": True}

    # The client never lands in the overflow of requests/latency, and nothing stays in flight.
    for metric in (contract.REQUESTS, contract.LATENCY):
        totals = label_totals(every, metric)
        assert all(totals[(label.name, contract.OVERFLOW)] == 0 for label in metric.labels)
    for registry in every:
        for route in contract.ROUTE.allowed:
            assert registry.get_sample_value(contract.IN_FLIGHT.name, {"route": route}) == 0

    # Chaos alone: every retry reason and every fallback reason occurred.
    chaos_retries = label_totals(registries["chaos"], contract.RETRIES)
    chaos_fallbacks = label_totals(registries["chaos"], contract.FALLBACKS)
    assert {r: chaos_retries[("reason", r)] > 0 for r in contract.RETRY_REASON.values} == dict.fromkeys(
        contract.RETRY_REASON.values, True)
    assert {r: chaos_fallbacks[("reason", r)] > 0 for r in contract.FALLBACK_REASON.values} == dict.fromkeys(
        contract.FALLBACK_REASON.values, True)

    # Per run, the metrics agree with the batch summary.
    for name, regs in registries.items():
        for registry, summary in zip(regs, [s for s in summaries if s.scenario == name]):
            requests = label_totals([registry], contract.REQUESTS)
            assert requests[("route", "direct")] + requests[("route", "router")] == summary.requests
            assert requests[("result", "error")] == summary.results.get("error", 0)
            retries = label_totals([registry], contract.RETRIES)
            assert {r: retries[("reason", r)] for r in contract.RETRY_REASON.values} == {
                r: summary.retries.get(r, 0) for r in contract.RETRY_REASON.values}
            fallbacks = label_totals([registry], contract.FALLBACKS)
            assert {r: fallbacks[("reason", r)] for r in contract.FALLBACK_REASON.values} == {
                r: summary.fallbacks.get(r, 0) for r in contract.FALLBACK_REASON.values}
