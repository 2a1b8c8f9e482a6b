"""The contract's metrics as prometheus-client objects in one registry, children cached.

Importing this module imports prometheus-client; telemetry imports it lazily so that a
host without prometheus-client gets no-ops instead of an ImportError.

The cached children are kept as ready-to-call updaters. Where prometheus-client exposes a
child's value object (``_value``, ``_sum``, ``_buckets``), an updater adds to it directly and
skips the per-call checks that a labelled child, incremented by 1, always passes (about a
third off each call); otherwise, or for exemplars and NaN, it calls the public method. The
exposition is the same either way (tests/unit/test_telemetry.py compares the two).
"""

from __future__ import annotations

from bisect import bisect_left
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


def _adder(child: Any) -> Callable[[float], None]:
    """``add(amount)`` for a labelled counter or gauge child (a gauge takes negative amounts)."""
    inc = getattr(getattr(child, "_value", None), "inc", None)
    if not callable(inc) or getattr(child, "_is_most_recent", False):
        return child.inc  # type: ignore[no-any-return]
    return inc  # type: ignore[no-any-return]


def _observer(child: Any) -> Callable[..., None]:
    """``observe(amount, exemplar=None)`` for a labelled histogram child."""
    public = child.observe
    try:
        add_sum = child._sum.inc  # noqa: SLF001
        bounds = tuple(child._upper_bounds)  # noqa: SLF001
        add_bucket = tuple(bucket.inc for bucket in child._buckets)  # noqa: SLF001
    except AttributeError:
        return public
    if len(bounds) != len(add_bucket) or bounds[-1] != float("inf"):
        return public

    def observe(amount: float, exemplar: dict[str, str] | None = None) -> None:
        if exemplar or amount != amount:  # exemplars and NaN take the public path
            public(amount, exemplar)
            return
        add_sum(amount)  # raises first for a non-number, like Histogram.observe
        add_bucket[bisect_left(bounds, amount)](1)  # the first bucket with amount <= le

    return observe


class InFlight:
    """Context manager that counts one call in flight on a gauge child."""

    __slots__ = ("_add",)

    def __init__(self, child: Gauge) -> None:
        self._add: Callable[[float], None] = _adder(child)

    def __enter__(self) -> None:
        self._add(1)

    def __exit__(self, *exc: object) -> None:
        self._add(-1)


class MetricSet:
    """Every contract series, created at zero, with label children cached by value.

    ``requests`` maps (route, result, retried, model_tier) to (add to the counter, observe the
    latency); ``retries`` and ``fallbacks`` map a reason to its counter's add; ``in_flight``
    maps a route to its context manager. Counters are only ever added 1.
    """

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
        observers = {
            (s["route"], s["model_tier"]): _observer(latency.labels(**s)) for s in c.LATENCY.label_sets()
        }
        self.requests: dict[tuple[str, str, str, str], tuple[Callable[[float], None], Callable[..., None]]] = {
            (s["route"], s["result"], s["retried"], s["model_tier"]): (
                _adder(requests.labels(**s)), observers[(s["route"], s["model_tier"])],
            )
            for s in c.REQUESTS.label_sets()
        }
        self.retries: dict[str, Callable[[float], None]] = {
            s["reason"]: _adder(retries.labels(**s)) for s in c.RETRIES.label_sets()
        }
        self.fallbacks: dict[str, Callable[[float], None]] = {
            s["reason"]: _adder(fallbacks.labels(**s)) for s in c.FALLBACKS.label_sets()
        }
        self.in_flight: dict[str, InFlight] = {
            s["route"]: InFlight(in_flight.labels(**s)) for s in c.IN_FLIGHT.label_sets()
        }

    def request_children(self, route: Any, result: Any, retried: Any, model_tier: Any) -> tuple[Any, Any]:
        """Updaters for a request whose labels missed the cache: normalize, then look up."""
        key = (
            normalize(contract.ROUTE, route), normalize(contract.RESULT, result),
            normalize(contract.RETRIED, retried), normalize(contract.MODEL_TIER, model_tier),
        )
        return self.requests[key]
