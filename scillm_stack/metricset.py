"""The contract's metrics as prometheus-client objects in one registry, children cached.

Importing this module imports prometheus-client; telemetry imports it lazily so that a
host without prometheus-client gets no-ops instead of an ImportError.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from scillm_stack import contract
from scillm_stack.contract import OVERFLOW, Label

# Inputs a SciLLM call site may pass for `retried` besides the contract's strings.
_RETRIED_ALIASES: Mapping[Any, str] = MappingProxyType({True: "1", False: "0", 1: "1", 0: "0"})


def normalize(label: Label, value: Any) -> str:
    """`value` if the contract allows it for `label`, else the overflow bucket."""
    try:
        if value in label.allowed and isinstance(value, str):
            return value
        if label is contract.RETRIED:
            return _RETRIED_ALIASES.get(value, OVERFLOW)
    except TypeError:  # unhashable input
        pass
    return OVERFLOW


class InFlight:
    """Context manager that counts one call in flight on a gauge child."""

    __slots__ = ("_inc", "_dec")

    def __init__(self, child: Gauge) -> None:
        self._inc: Callable[[], None] = child.inc
        self._dec: Callable[[], None] = child.dec

    def __enter__(self) -> None:
        self._inc()

    def __exit__(self, *exc: object) -> None:
        self._dec()


class MetricSet:
    """Every contract series, created at zero, with label children cached by value."""

    def __init__(self, registry: CollectorRegistry) -> None:
        c = contract
        requests = Counter(c.REQUESTS.name, c.REQUESTS.help, c.REQUESTS.label_names, registry=registry)
        latency = Histogram(
            c.LATENCY.name, c.LATENCY.help, c.LATENCY.label_names,
            buckets=contract.LATENCY_BUCKETS, registry=registry,
        )
        retries = Counter(c.RETRIES.name, c.RETRIES.help, c.RETRIES.label_names, registry=registry)
        fallbacks = Counter(c.FALLBACKS.name, c.FALLBACKS.help, c.FALLBACKS.label_names, registry=registry)
        in_flight = Gauge(
            c.IN_FLIGHT.name, c.IN_FLIGHT.help, c.IN_FLIGHT.label_names,
            registry=registry, multiprocess_mode="livesum",
        )
        self.collectors: tuple[Any, ...] = (requests, latency, retries, fallbacks, in_flight)
        # (route, result, retried, model_tier) -> (request counter child, latency child)
        self.requests: dict[tuple[str, str, str, str], tuple[Any, Any]] = {
            (s["route"], s["result"], s["retried"], s["model_tier"]): (
                requests.labels(**s), latency.labels(route=s["route"], model_tier=s["model_tier"]),
            )
            for s in c.REQUESTS.label_sets()
        }
        self.retries: dict[str, Any] = {s["reason"]: retries.labels(**s) for s in c.RETRIES.label_sets()}
        self.fallbacks: dict[str, Any] = {s["reason"]: fallbacks.labels(**s) for s in c.FALLBACKS.label_sets()}
        self.in_flight: dict[str, InFlight] = {
            s["route"]: InFlight(in_flight.labels(**s)) for s in c.IN_FLIGHT.label_sets()
        }

    def request_children(self, route: Any, result: Any, retried: Any, model_tier: Any) -> tuple[Any, Any]:
        """Children for a request whose labels missed the cache: normalize, then look up."""
        key = (
            normalize(contract.ROUTE, route), normalize(contract.RESULT, result),
            normalize(contract.RETRIED, retried), normalize(contract.MODEL_TIER, model_tier),
        )
        return self.requests[key]
