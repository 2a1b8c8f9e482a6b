"""The SciLLM metric contract: every metric, its type, labels and allowed label values.

This is the one declaration that telemetry enforces, that the rules and dashboard are
checked against, and that the live tests walk series by series. Values come from the
SciLLM telemetry doc; ``other`` is the overflow bucket every label maps unknown input to,
so a bad value never makes a new series.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Literal

OVERFLOW = "other"

# SciLLM's own buckets (0.05 .. 300 s) plus finer low end and a 10-minute tail.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)

MetricType = Literal["counter", "histogram", "gauge"]


@dataclass(frozen=True)
class Label:
    """A label and the closed set of values it may carry."""

    name: str
    values: tuple[str, ...]

    @property
    def allowed(self) -> tuple[str, ...]:
        """The declared values plus the overflow bucket: every series that can exist."""
        return self.values if OVERFLOW in self.values else (*self.values, OVERFLOW)


@dataclass(frozen=True)
class Metric:
    """One metric family of the contract."""

    name: str
    type: MetricType
    help: str
    labels: tuple[Label, ...]

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)

    @property
    def sample_names(self) -> tuple[str, ...]:
        """Names of the samples this family exposes (counters in the `_total` form)."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_count", f"{self.name}_sum")
        return (self.name,)

    def label_sets(self) -> Iterator[dict[str, str]]:
        """Every allowed combination of label values (the series the family pre-creates)."""
        for combo in itertools.product(*(label.allowed for label in self.labels)):
            yield dict(zip(self.label_names, combo))

    @property
    def counted_sample(self) -> str:
        """The sample with one series per label set (`_count` of a histogram)."""
        return f"{self.name}_count" if self.type == "histogram" else self.name

    def sample_series(self) -> dict[str, int]:
        """How many series each sample of this family exposes, every label set pre-created."""
        combos = 1
        for label in self.labels:
            combos *= len(label.allowed)
        if self.type == "histogram":
            bucket, count, total = self.sample_names
            return {bucket: combos * (len(LATENCY_BUCKETS) + 1), count: combos, total: combos}  # +1: +Inf
        return {self.name: combos}

    def series_bound(self) -> int:
        """How many series this family can ever expose."""
        return sum(self.sample_series().values())


ROUTE = Label("route", ("direct", "router"))
RESULT = Label("result", ("ok", "error"))
RETRIED = Label("retried", ("0", "1"))
MODEL_TIER = Label("model_tier", ("text", "vlm", "tools"))
RETRY_REASON = Label("reason", ("429_capacity", "timeout", "5xx", "other"))
# Why the router left a deployment: the retry reasons plus a deployment that did not answer.
FALLBACK_REASON = Label("reason", ("429_capacity", "timeout", "5xx", "unreachable", "other"))

REQUESTS = Metric(
    "scillm_requests_total", "counter",
    "SciLLM completion requests by route, final result, whether retried, and model tier.",
    (ROUTE, RESULT, RETRIED, MODEL_TIER),
)
LATENCY = Metric(
    "scillm_request_latency_seconds", "histogram",
    "Wall time of a whole SciLLM completion call, retries and fallbacks included.",
    (ROUTE, MODEL_TIER),
)
RETRIES = Metric(
    "scillm_retries_total", "counter",
    "Retries made by tenacious mode, by reason.",
    (RETRY_REASON,),
)
FALLBACKS = Metric(
    "scillm_router_fallbacks_total", "counter",
    "Router fallbacks from one deployment to the next, by reason.",
    (FALLBACK_REASON,),
)
IN_FLIGHT = Metric(
    "scillm_requests_in_flight", "gauge",
    "SciLLM completion calls currently running, by route.",
    (ROUTE,),
)

METRICS: tuple[Metric, ...] = (REQUESTS, LATENCY, RETRIES, FALLBACKS, IN_FLIGHT)


def metric_by_sample_name(sample: str) -> Metric | None:
    """The contract metric that exposes ``sample`` (e.g. ``..._bucket``), if any."""
    for metric in METRICS:
        if sample in metric.sample_names:
            return metric
    return None


def allowed_values(metric: Metric, label_name: str) -> tuple[str, ...]:
    """Allowed values of one label of a metric; `le` of a histogram is free."""
    for label in metric.labels:
        if label.name == label_name:
            return label.allowed
    raise KeyError(f"{metric.name} has no label {label_name!r}")


def series_bound() -> int:
    """The total number of series the whole contract can expose."""
    return sum(metric.series_bound() for metric in METRICS)
