#!/usr/bin/env python
"""Per-request telemetry cost: bare prometheus-client vs scillm_stack.telemetry, and disabled.

One "request" is what the instrumented client does per completion call with one retry and
one fallback: in-flight gauge up, a retry, a router fallback, the request counter and its
latency observation, in-flight gauge down.

  (a) bare      prometheus-client with label children cached up front (the floor)
  (b) telemetry scillm_stack.telemetry, enabled through the env on the global registry
                (SCILLM_METRICS=prom, a free port, init_from_env()), and with an explicit registry
  (c) disabled  scillm_stack.telemetry with SCILLM_METRICS unset, in a fresh subprocess

(a) and (b) run interleaved in one process: each repeat is cut in 10 slices and every slice
runs all variants round-robin, so drift and noise hit them alike. The us/request figure is
the best slice (timeit's min; median of repeats in brackets); the ratio is the median over
repeats of (b)/(a) within the same repeat. Targets: (b)/(a) <= 1.15, (c) <= 0.5 us.
Exit status 0 when every target is met, 2 when one is missed.

    python bench/bench_telemetry.py [--number 200000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LATENCY_S = 0.123
RATIO_TARGET = 1.15
DISABLED_TARGET_US = 0.5
CHUNKS = 10


def _time(loop: Callable[[int], None], number: int) -> float:
    """Seconds for `number` requests, with the GC off like timeit."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        loop(number)
        return time.perf_counter() - started
    finally:
        if gc_was_enabled:
            gc.enable()


def bare_loop_factory() -> Callable[[int], None]:
    """prometheus-client alone: the contract's metrics in a private registry, children cached."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    from scillm_stack import contract as c

    registry = CollectorRegistry()
    requests = Counter(c.REQUESTS.name, c.REQUESTS.help, c.REQUESTS.label_names, registry=registry)
    latency = Histogram(c.LATENCY.name, c.LATENCY.help, c.LATENCY.label_names,
                        buckets=c.LATENCY_BUCKETS, registry=registry)
    retries = Counter(c.RETRIES.name, c.RETRIES.help, c.RETRIES.label_names, registry=registry)
    fallbacks = Counter(c.FALLBACKS.name, c.FALLBACKS.help, c.FALLBACKS.label_names, registry=registry)
    in_flight = Gauge(c.IN_FLIGHT.name, c.IN_FLIGHT.help, c.IN_FLIGHT.label_names, registry=registry)
    request_child = requests.labels(route="router", result="ok", retried="1", model_tier="text")
    latency_child = latency.labels(route="router", model_tier="text")
    retry_child = retries.labels(reason="5xx")
    fallback_child = fallbacks.labels(reason="5xx")
    gauge_child = in_flight.labels(route="router")

    def loop(number: int) -> None:
        for _ in range(number):
            gauge_child.inc()
            retry_child.inc()
            fallback_child.inc()
            request_child.inc()
            latency_child.observe(LATENCY_S)
            gauge_child.dec()

    loop.registry = registry  # type: ignore[attr-defined]
    return loop


def telemetry_loop_factory(registry: Any = None) -> Callable[[int], None]:
    """The same request through scillm_stack.telemetry's public calls."""
    from scillm_stack.telemetry import record_request, record_retry, record_router_fallback, track_in_flight

    if registry is None:
        def loop(number: int) -> None:
            for _ in range(number):
                with track_in_flight(route="router"):
                    record_retry(reason="5xx")
                    record_router_fallback(reason="5xx")
                    record_request(route="router", result="ok", retried="1", model_tier="text",
                                   latency_s=LATENCY_S)
    else:
        def loop(number: int) -> None:
            for _ in range(number):
                with track_in_flight(route="router", registry=registry):
                    record_retry(reason="5xx", registry=registry)
                    record_router_fallback(reason="5xx", registry=registry)
                    record_request(route="router", result="ok", retried="1", model_tier="text",
                                   latency_s=LATENCY_S, registry=registry)
    return loop


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(variants: dict[str, Callable[[int], None]], number: int, repeat: int) -> dict[str, Any]:
    """Time every variant `repeat` times on `number` requests, interleaved.

    Each repeat runs in CHUNKS slices; every slice runs all variants round-robin, rotating
    who goes first, so drift and noise hit the variants alike. Returns per variant the
    us/request of every slice and of every repeat (sum of its slices).
    """
    for loop in variants.values():
        loop(1000)  # warm up: caches, lazy paths
    chunk = max(1, number // CHUNKS)
    order = list(variants)
    slices: dict[str, list[float]] = {name: [] for name in variants}
    repeats: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        spent = dict.fromkeys(variants, 0.0)
        for index in range(CHUNKS):
            shift = index % len(order)
            for name in order[shift:] + order[:shift]:
                seconds = _time(variants[name], chunk)
                spent[name] += seconds
                slices[name].append(seconds / chunk * 1e6)
        for name, seconds in spent.items():
            repeats[name].append(seconds / (chunk * CHUNKS) * 1e6)
    return {"slices": slices, "repeats": repeats, "requests": repeat * chunk * CHUNKS + 1000}


def run_disabled_child(number: int, repeat: int) -> None:
    """Entry point of the subprocess: telemetry with SCILLM_METRICS unset, fresh state."""
    for name in ("SCILLM_METRICS", "SCILLM_METRICS_ADDR", "SCILLM_METRICS_PORT"):
        os.environ.pop(name, None)
    from scillm_stack import telemetry

    assert telemetry.init_from_env() is False

    def empty(n: int) -> None:
        for _ in range(n):
            pass

    result = measure({"disabled": telemetry_loop_factory(), "empty": empty}, number, repeat)
    print(json.dumps(result))


def measure_disabled(number: int, repeat: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCILLM_METRICS")}
    proc = subprocess.run(
        [sys.executable, __file__, "--disabled-child", "--number", str(number), "--repeat", str(repeat)],
        env=env, capture_output=True, text=True, check=True,
    )
    return json.loads(proc.stdout)


def _figure(result: dict[str, Any], name: str) -> str:
    best = min(result["slices"][name])
    median = statistics.median(result["repeats"][name])
    return f"{best:7.3f} us  [{median:7.3f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--number", type=int, default=200_000, help="requests per timed repeat")
    parser.add_argument("--repeat", type=int, default=7, help="timed repeats per variant")
    parser.add_argument("--disabled-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.disabled_child:
        run_disabled_child(args.number, args.repeat)
        return 0

    import prometheus_client
    from prometheus_client import REGISTRY, CollectorRegistry

    from scillm_stack import telemetry

    port = _free_port()
    os.environ.update({"SCILLM_METRICS": "prom", "SCILLM_METRICS_ADDR": "127.0.0.1",
                       "SCILLM_METRICS_PORT": str(port)})
    if not telemetry.init_from_env():
        print("telemetry did not enable from the env", file=sys.stderr)
        return 1
    explicit = CollectorRegistry()
    result = measure({"bare": bare_loop_factory(), "env": telemetry_loop_factory(),
                      "explicit": telemetry_loop_factory(explicit)}, args.number, args.repeat)

    # Sanity: the telemetry loops recorded for real, on the global registry served at /metrics.
    labels = {"route": "router", "result": "ok", "retried": "1", "model_tier": "text"}
    assert REGISTRY.get_sample_value("scillm_requests_total", labels) == result["requests"]
    assert explicit.get_sample_value("scillm_requests_total", labels) == result["requests"]
    assert telemetry.metrics_endpoint() == f"127.0.0.1:{port}"

    disabled = measure_disabled(args.number, args.repeat)

    print(f"scillm telemetry bench: Python {sys.version.split()[0]}, prometheus-client "
          f"{getattr(prometheus_client, '__version__', None) or _pkg_version()}, "
          f"{args.repeat} repeats x {args.number} requests in {CHUNKS} interleaved slices")
    print("  one request = in-flight inc/dec + retry + fallback + request counter + latency observe")
    print("  us/request: best slice [median of repeats]; ratio: median over repeats of telemetry/bare")
    print(f"  (a) bare prometheus-client, cached children     {_figure(result, 'bare')}")
    verdicts = []
    repeats = result["repeats"]
    for name, title in (("env", "(b) telemetry, env-enabled global registry   "),
                        ("explicit", "(b) telemetry, explicit registry            ")):
        paired = statistics.median(t / b for t, b in zip(repeats[name], repeats["bare"]))
        of_best = min(result["slices"][name]) / min(result["slices"]["bare"])
        ok = paired <= RATIO_TARGET
        verdicts.append(ok)
        print(f"  {title}   {_figure(result, name)}  ratio {paired:.3f}x ({of_best:.3f}x of best)  "
              f"target <= {RATIO_TARGET}x  {'PASS' if ok else 'MISS'}")
    off = min(disabled["slices"]["disabled"])
    ok = off <= DISABLED_TARGET_US
    verdicts.append(ok)
    print(f"  (c) telemetry disabled (env unset, subprocess)  {_figure(disabled, 'disabled')}  "
          f"target <= {DISABLED_TARGET_US} us  {'PASS' if ok else 'MISS'}  "
          f"(empty loop {min(disabled['slices']['empty']):.3f} us)")
    return 0 if all(verdicts) else 2


def _pkg_version() -> str:
    from importlib.metadata import version

    return version("prometheus-client")


if __name__ == "__main__":
    sys.exit(main())
