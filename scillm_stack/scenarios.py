"""Named load scenarios as data: traffic mix and the fault profile of each phase.

A phase starts at a fraction of the run's duration and sets the fault profile of each
deployment (fields not named are reset to healthy) and a factor on the request rate.
``alert`` names the alert of the rules that this scenario is meant to fire, if any.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

Profiles = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Phase:
    at: float  # fraction of the duration, 0 <= at < 1
    profiles: Profiles = field(default_factory=dict)
    rps_factor: float = 1.0


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    phases: tuple[Phase, ...]
    route_mix: Mapping[str, float] = field(default_factory=lambda: {"direct": 0.5, "router": 0.5})
    tier_mix: Mapping[str, float] = field(default_factory=lambda: {"text": 0.6, "vlm": 0.2, "tools": 0.2})
    alert: str | None = None

    def phase_at(self, fraction: float) -> Phase:
        """The phase in force at `fraction` of the run."""
        current = self.phases[0]
        for phase in self.phases:
            if phase.at <= fraction:
                current = phase
        return current


_CAPACITY = {"alpha": {"p_429": 0.45, "p_503": 0.15}, "beta": {"p_429": 0.35}}
_SLOW = {"latency_ms": 2600.0, "latency_sigma": 0.2}

SCENARIOS: Mapping[str, Scenario] = MappingProxyType({s.name: s for s in (
    Scenario("steady", "healthy deployments, even traffic", (Phase(0.0),)),
    Scenario("burst", "traffic jumps five-fold in the middle third, with some rate limiting", (
        Phase(0.0),
        Phase(0.33, {"alpha": {"p_429": 0.05}}, rps_factor=5.0),
        Phase(0.67),
    )),
    Scenario("capacity-429", "the provider rate-limits: 429/503 on alpha and beta", (
        Phase(0.0, _CAPACITY),
    ), alert="SciLLMHighCapacityRetries"),
    Scenario("latency-spike", "every deployment answers in seconds", (
        Phase(0.0, {name: _SLOW for name in ("alpha", "beta", "gamma")}),
    ), alert="SciLLMLatencyP95High"),
    Scenario("fallback-storm", "alpha is down and beta fails half the time; the router falls back", (
        Phase(0.0, {"alpha": {"dead": True}, "beta": {"p_5xx": 0.5}}),
    ), route_mix={"direct": 0.1, "router": 0.9}, alert="SciLLMRouterFallbackSpike"),
    Scenario("chaos", "every fault at once, shifting; some calls fail for good", (
        Phase(0.0, {"alpha": {"p_429": 0.25, "p_5xx": 0.15, "p_timeout": 0.1},
                    "beta": {"p_bad": 0.1, "p_503": 0.1, "p_timeout": 0.05},
                    "gamma": {"latency_ms": 400.0, "p_5xx": 0.1}}),
        Phase(0.5, {"alpha": {"dead": True}, "beta": {"p_429": 0.3, "p_bad": 0.1},
                    "gamma": {"p_5xx": 0.2, "p_timeout": 0.1}}),
        Phase(0.8, {"alpha": {"p_5xx": 0.6}, "beta": {"dead": True},
                    "gamma": {"p_429": 0.3, "latency_ms": 900.0}}),
    )),
)})
