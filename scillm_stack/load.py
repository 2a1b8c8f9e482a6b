"""Bounded load generator: drive the instrumented client through a scenario.

A run is bounded by ``duration_s`` and ``max_requests`` and always stops by itself. It
writes a JSON batch-summary line at start and end (run_id lives in the log body, never in
a metric label) plus one line per request carrying its trace_id, to a log file and stdout.
"""

from __future__ import annotations

import json
import random
import secrets
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

import requests

from scillm_stack.demo.client import ClientConfig, CompletionError, Outcome, SciLLMClient
from scillm_stack.demo.upstream import DEPLOYMENTS, FakeUpstream
from scillm_stack.scenarios import Phase, Scenario

MESSAGES = [{"role": "user", "content": "Summarise the batch item."}]


@dataclass
class LoadSummary:
    """Counts of one load run, as logged at its end."""

    run_id: str
    scenario: str
    status: str = "running"
    requests: int = 0
    shed: int = 0
    results: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    fallbacks: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def quantile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def as_log(self) -> dict[str, Any]:
        p50, p95 = self.quantile(0.5), self.quantile(0.95)
        return {
            "run_id": self.run_id, "scenario": self.scenario, "status": self.status,
            "requests": self.requests, "shed": self.shed, "counts": dict(self.results),
            "retries": dict(self.retries), "fallbacks": dict(self.fallbacks),
            "routes": dict(self.routes), "elapsed_s": round(self.elapsed_s, 3),
            "latency_p50_s": None if p50 is None else round(p50, 4),
            "latency_p95_s": None if p95 is None else round(p95, 4),
        }


class BatchLog:
    """JSON-lines log to a file and (optionally) a stream; thread-safe."""

    def __init__(self, path: Path | None, *, echo: TextIO | None = sys.stdout, echo_requests: bool = False) -> None:
        self._lock = threading.Lock()
        self._echo = echo
        self._echo_requests = echo_requests
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    def write(self, event: str, level: str = "info", **fields: Any) -> None:
        now = time.time()  # one reading, so the seconds and the milliseconds agree
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        line = json.dumps({"ts": stamp,
                           "level": level, "service": "scillm-demo", "event": event, **fields},
                          separators=(",", ":"))
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
            if self._echo is not None and (event != "request" or self._echo_requests):
                self._echo.write(line + "\n")
                self._echo.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class UpstreamControl:
    """Sets deployment fault profiles through the upstream's control API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def apply(self, phase: Phase) -> None:
        for name in DEPLOYMENTS:
            changes = {"_reset": True, **phase.profiles.get(name, {})}
            response = requests.put(f"{self.base_url}/_control/deployments/{name}", json=changes, timeout=5)
            response.raise_for_status()


def _pick(rng: random.Random, mix: Any) -> str:
    names, weights = zip(*mix.items())
    return rng.choices(names, weights)[0]


@dataclass(frozen=True)
class LoadPlan:
    """What to run: scenario, rate and bounds."""

    scenario: Scenario
    rps: float = 10.0
    duration_s: float = 30.0
    max_requests: int | None = None
    concurrency: int = 32
    seed: int | None = None


def run_load(plan: LoadPlan, *, upstream_url: str, api_key: str, log: BatchLog,
             registry: Any = None, stop: threading.Event | None = None,
             progress: Callable[[LoadSummary, float], None] | None = None,
             client_config: dict[str, Any] | None = None, run_id: str | None = None) -> LoadSummary:
    """Run `plan` against `upstream_url`; return the summary (also logged at start and end)."""
    stop = stop or threading.Event()
    rng = random.Random(plan.seed)
    summary = LoadSummary(run_id=run_id or new_run_id(), scenario=plan.scenario.name)
    client = SciLLMClient(ClientConfig(base_url=upstream_url, api_key=api_key, **(client_config or {})),
                          registry=registry)
    control = UpstreamControl(upstream_url)
    lock = threading.Lock()
    in_flight = threading.BoundedSemaphore(plan.concurrency)
    log.write("batch_start", run_id=summary.run_id, scenario=plan.scenario.name, rps=plan.rps,
              duration_s=plan.duration_s, max_requests=plan.max_requests, status="running")

    def one(route: str, tier: str) -> None:
        try:
            outcome: Outcome = client.completion(MESSAGES, route=route, model_tier=tier)
        except CompletionError as exc:
            outcome = exc.outcome
        finally:
            in_flight.release()
        with lock:
            summary.results[outcome.result] += 1
            summary.routes[route] += 1
            summary.retries.update(outcome.retries)
            summary.fallbacks.update(outcome.fallbacks)
            summary.latencies.append(outcome.latency_s)
        log.write("request", "error" if outcome.result == "error" else "info", run_id=summary.run_id,
                  trace_id=outcome.trace_id, route=route, model_tier=tier, result=outcome.result,
                  retried=outcome.retried, attempts=outcome.attempts, deployment=outcome.deployment,
                  latency_s=round(outcome.latency_s, 4), error=outcome.error)

    started = time.monotonic()
    phase: Phase | None = None
    next_at = started
    try:
        with ThreadPoolExecutor(max_workers=plan.concurrency, thread_name_prefix="load") as pool:
            while not stop.is_set():
                now = time.monotonic()
                fraction = (now - started) / plan.duration_s
                if fraction >= 1 or (plan.max_requests is not None and summary.requests >= plan.max_requests):
                    break
                current = plan.scenario.phase_at(fraction)
                if current is not phase:
                    control.apply(current)
                    phase = current
                if now < next_at:
                    stop.wait(min(next_at - now, 0.05))
                    continue
                next_at += 1.0 / (plan.rps * current.rps_factor)
                if not in_flight.acquire(blocking=False):
                    summary.shed += 1  # every worker busy: drop rather than queue without bound
                    continue
                summary.requests += 1
                pool.submit(one, _pick(rng, plan.scenario.route_mix), _pick(rng, plan.scenario.tier_mix))
                if progress is not None:
                    progress(summary, min(fraction, 1.0))
        summary.status = "interrupted" if stop.is_set() else (
            "degraded" if summary.results.get("error") else "ok")
    except BaseException:
        summary.status = "interrupted"
        raise
    finally:
        summary.elapsed_s = time.monotonic() - started
        log.write("batch_end", "warning" if summary.status != "ok" else "info", **summary.as_log())
    return summary


def new_run_id() -> str:
    """A fresh batch run id (it goes in log bodies, never in labels)."""
    return uuid.uuid4().hex[:16]


def demo_api_key() -> str:
    """A fake API key for the demo; it must never reach /metrics or a log."""
    return "sk-scillm-demo-" + secrets.token_hex(12)


def start_upstream(seed: int | None = None) -> FakeUpstream:
    """Start a fake upstream on an ephemeral 127.0.0.1 port."""
    return FakeUpstream(seed=seed).start()
