"""A SciLLM-style completion client, instrumented with ``scillm_stack.telemetry``.

Routes: ``direct`` calls one deployment; ``router`` walks the deployments in order and
falls back on failure. Tenacious mode retries capacity (429/503), timeouts and other
failures with capped exponential backoff. Every signal of the contract is recorded: each
retry and fallback with its reason, in-flight per route, and one request sample at the
end carrying the final result, ``retried`` and the latency of the whole call.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import requests

from scillm_stack import telemetry
from scillm_stack.demo.upstream import DEPLOYMENTS

# Failure kind of one attempt -> the retry reason of the contract.
_RETRY_REASON = {"429_capacity": "429_capacity", "timeout": "timeout", "5xx": "5xx",
                 "unreachable": "other", "other": "other"}


@dataclass(frozen=True)
class ClientConfig:
    """Where the client sends requests and how hard it tries."""

    base_url: str
    api_key: str = field(repr=False)
    timeout_s: float = 5.0
    max_attempts: int = 4  # tenacious attempts on the direct route
    router_passes: int = 2  # tenacious passes over all deployments on the router route
    backoff_s: float = 0.05
    backoff_max_s: float = 1.0
    deployments: tuple[str, ...] = DEPLOYMENTS


@dataclass
class Outcome:
    """What one completion call did; ``error`` is None on success."""

    route: str
    model_tier: str
    trace_id: str
    result: str = "ok"
    retried: bool = False
    attempts: int = 0
    deployment: str | None = None
    latency_s: float = 0.0
    retries: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    error: str | None = None


class CompletionError(RuntimeError):
    """Every attempt failed; ``outcome`` says what happened."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"completion failed after {outcome.attempts} attempts: {outcome.error}")
        self.outcome = outcome


class SciLLMClient:
    """Completion calls over the direct and router routes, fully instrumented."""

    def __init__(self, config: ClientConfig, *, registry: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._registry = registry
        self._sleep = sleep
        self._local = threading.local()

    def completion(self, messages: list[dict[str, str]], *, route: str = "direct",
                   model_tier: str = "text", tenacious: bool = True,
                   trace_id: str | None = None) -> Outcome:
        """Run one completion; return its Outcome or raise CompletionError."""
        outcome = Outcome(route=route, model_tier=model_tier, trace_id=trace_id or secrets.token_hex(16))
        started = time.perf_counter()
        with telemetry.track_in_flight(route=route, registry=self._registry):
            try:
                if route == "router":
                    self._router(outcome, messages, tenacious)
                else:
                    self._direct(outcome, messages, tenacious)
            except BaseException:  # a call that raised is not a success
                outcome.result = "error"
                raise
            finally:
                outcome.latency_s = time.perf_counter() - started
                telemetry.record_request(
                    route=route, result=outcome.result, retried="1" if outcome.retried else "0",
                    model_tier=model_tier, latency_s=outcome.latency_s, trace_id=outcome.trace_id,
                    registry=self._registry,
                )
        if outcome.result == "error":
            raise CompletionError(outcome)
        return outcome

    def _direct(self, outcome: Outcome, messages: list[dict[str, str]], tenacious: bool) -> None:
        attempts = self.config.max_attempts if tenacious else 1
        deployment = self.config.deployments[0]
        for attempt in range(attempts):
            failure = self._attempt(outcome, deployment, messages)
            if failure is None:
                return
            if attempt + 1 < attempts:
                self._retry(outcome, failure, attempt)
        outcome.result = "error"

    def _router(self, outcome: Outcome, messages: list[dict[str, str]], tenacious: bool) -> None:
        passes = self.config.router_passes if tenacious else 1
        deployments = self.config.deployments
        for attempt in range(passes):
            for index, deployment in enumerate(deployments):
                failure = self._attempt(outcome, deployment, messages)
                if failure is None:
                    return
                if index + 1 < len(deployments):
                    outcome.fallbacks.append(failure)
                    telemetry.record_router_fallback(reason=failure, registry=self._registry)
            if attempt + 1 < passes:
                self._retry(outcome, failure, attempt)
        outcome.result = "error"

    def _retry(self, outcome: Outcome, failure: str, attempt: int) -> None:
        reason = _RETRY_REASON[failure]
        outcome.retried = True
        outcome.retries.append(reason)
        telemetry.record_retry(reason=reason, registry=self._registry)
        delay = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** attempt)
        self._sleep(delay * random.uniform(0.5, 1.0))

    def _attempt(self, outcome: Outcome, deployment: str, messages: list[dict[str, str]]) -> str | None:
        """One HTTP call; None on success, else the failure kind."""
        outcome.attempts += 1
        outcome.deployment = deployment
        failure = self._call(deployment, messages, outcome.trace_id)
        if failure is not None:
            outcome.error = f"{deployment}: {failure}"
        return failure

    def _call(self, deployment: str, messages: list[dict[str, str]], trace_id: str) -> str | None:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        try:
            response = session.post(
                f"{self.config.base_url}/v1/chat/completions",
                json={"model": deployment, "messages": messages},
                headers={"Authorization": f"Bearer {self.config.api_key}",
                         "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
                timeout=self.config.timeout_s,
            )
        except requests.Timeout:
            return "timeout"
        except requests.ConnectionError:
            return "unreachable"
        return classify(response)


def classify(response: requests.Response) -> str | None:
    """Failure kind of an HTTP answer, or None for a usable completion."""
    status = response.status_code
    if status in (429, 503):
        return "429_capacity"
    if status >= 500:
        return "5xx"
    if status != 200:
        return "other"
    try:
        body = response.json()
        body["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "other"
    return None
