"""Drop-in SciLLM telemetry: the seed's env contract, five metrics, enforced labels.

Public calls match SciLLM's module (keyword-only): ``init_from_env``, ``record_request``,
``record_retry``, ``record_router_fallback`` and ``track_in_flight``. Each also takes an
optional ``registry``; with one, metrics go to that registry whatever the environment says
(tests use a fresh ``CollectorRegistry``). Without one, metrics go to the global registry
when ``SCILLM_METRICS=prom|prometheus``, and a /metrics server starts on first use.

Nothing here raises into the host program: a bad env value, a busy port or a missing
prometheus-client turns metrics off with one warning (or none, for the missing package).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, ContextManager, Mapping

try:
    from scillm_stack import metricset as _ms
except ImportError:  # prometheus-client is not installed: every call is a no-op
    _ms = None  # type: ignore[assignment]

ENV_ENABLE = "SCILLM_METRICS"
ENV_ADDR = "SCILLM_METRICS_ADDR"
ENV_PORT = "SCILLM_METRICS_PORT"
DEFAULT_ADDR = "0.0.0.0"
DEFAULT_PORT = 9464
_ENABLE_VALUES = frozenset({"prom", "prometheus"})
_DISABLE_VALUES = frozenset({"", "0", "off", "false", "no", "none", "disabled"})


class TelemetryWarning(UserWarning):
    """Metrics were turned off or a metrics call failed; the host program goes on."""


class TelemetryConfigError(ValueError):
    """An env value of the telemetry contract is wrong; the message names the fix."""


@dataclass(frozen=True)
class MetricsSettings:
    """What the SCILLM_METRICS* environment asks for."""

    enabled: bool
    addr: str = DEFAULT_ADDR
    port: int = DEFAULT_PORT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MetricsSettings:
        """Parse the env contract; raise TelemetryConfigError naming the bad variable."""
        env = os.environ if environ is None else environ
        mode = env.get(ENV_ENABLE, "").strip().lower()
        if mode in _DISABLE_VALUES:
            return cls(enabled=False)
        if mode not in _ENABLE_VALUES:
            raise TelemetryConfigError(
                f"{ENV_ENABLE}={env[ENV_ENABLE]!r} is not understood; set it to 'prom' or "
                f"'prometheus' to enable metrics, or unset it"
            )
        addr = env.get(ENV_ADDR, "").strip() or DEFAULT_ADDR
        raw_port = env.get(ENV_PORT, "").strip() or str(DEFAULT_PORT)
        if not (raw_port.isascii() and raw_port.isdigit()) or not 1 <= int(raw_port) <= 65535:
            raise TelemetryConfigError(
                f"{ENV_PORT}={raw_port!r} is not a TCP port; set it to a number from 1 to 65535 "
                f"(default {DEFAULT_PORT})"
            )
        return cls(enabled=True, addr=addr, port=int(raw_port))


_lock = threading.Lock()
_resolved = False
_active: Any = None  # the global registry's MetricSet once enabled
_settings: MetricsSettings | None = None
_server: Any = None
_sets: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_last: tuple[Any, Any] = (None, None)  # (registry, its MetricSet): the lock-free fast path


class _NoOp:
    """What track_in_flight returns while metrics are off: a context manager doing nothing.

    Its enter and exit are C callables that class lookup does not bind, so a ``with`` costs
    no Python frame: about half the cost of contextlib.nullcontext on the disabled hot path.
    """

    __slots__ = ()
    __enter__ = {}.clear  # returns None; the dict is private and always empty
    __exit__ = "".format  # returns "" (falsy): an exception raised in the block propagates


_NULL: ContextManager[None] = _NoOp()  # type: ignore[assignment]
_failed_once = False


def _warn(message: str) -> None:
    warnings.warn(f"scillm telemetry: {message}", TelemetryWarning, stacklevel=3)


def _start_server(settings: MetricsSettings, registry: Any) -> Any:
    from prometheus_client import start_http_server

    try:
        return start_http_server(settings.port, addr=settings.addr, registry=registry)
    except OSError as exc:
        raise TelemetryConfigError(
            f"cannot serve /metrics on {settings.addr}:{settings.port} ({exc.strerror or exc}); "
            f"set {ENV_PORT} to a free port or {ENV_ADDR} to an address of this host"
        ) from None


def _resolve() -> Any:
    """Read the env once, build the global metric set and start /metrics; thread-safe."""
    global _resolved, _active, _settings, _server
    with _lock:
        if _resolved:
            return _active
        try:
            if _ms is None:
                return None
            settings = MetricsSettings.from_env()
            _settings = settings
            if not settings.enabled:
                return None
            from prometheus_client import REGISTRY

            created = REGISTRY not in _sets
            metric_set = _metric_set(REGISTRY)
            try:
                _server = _start_server(settings, REGISTRY)
            except TelemetryConfigError:
                if created:  # metrics are off: leave no zero series in the host's registry
                    _drop_set(REGISTRY)
                raise
            _active = metric_set
        except TelemetryConfigError as exc:
            _warn(f"{exc}; metrics are off")
        except ValueError as exc:  # e.g. the host already registered these metric names
            _warn(f"cannot register metrics ({exc}); metrics are off")
        finally:
            _resolved = True
        return _active


def _metric_set(registry: Any) -> Any:
    metric_set = _sets.get(registry)
    if metric_set is None:
        metric_set = _sets[registry] = _ms.MetricSet(registry)
    return metric_set


def _drop_set(registry: Any) -> None:
    global _last
    if _last[0] is registry:
        _last = (None, None)
    metric_set = _sets.pop(registry, None)
    for collector in getattr(metric_set, "collectors", ()):
        with contextlib.suppress(KeyError):
            registry.unregister(collector)


def _for_registry(registry: Any) -> Any:
    global _last
    last = _last
    if last[0] is registry:
        return last[1]
    if _ms is None:
        return None
    with _lock:
        metric_set = _metric_set(registry)
        _last = (registry, metric_set)
    return metric_set


def _failed(exc: BaseException) -> None:
    global _failed_once
    if not _failed_once:
        _failed_once = True
        _warn(f"a metrics call failed and was skipped ({exc!r})")


def init_from_env(*, registry: Any = None) -> bool:
    """Enable metrics as the env says; True when metrics are being recorded."""
    try:
        if registry is not None:
            return _for_registry(registry) is not None
        return (_active if _resolved else _resolve()) is not None
    except Exception as exc:  # never let metrics break the host
        _failed(exc)
        return False


def record_request(
    *, route: str, result: str, retried: str, model_tier: str,
    latency_s: float | None = None, trace_id: str | None = None, registry: Any = None,
) -> None:
    """Count one finished request; observe its latency (with a trace_id exemplar if given)."""
    if registry is None and _active is None and _resolved:  # disabled: the cheapest exit
        return
    try:
        if registry is None:
            metric_set = _active if _resolved else _resolve()
            if metric_set is None:
                return
        else:
            metric_set = _for_registry(registry)
            if metric_set is None:
                return
        try:
            children = metric_set.requests.get((route, result, retried, model_tier))
        except TypeError:  # an unhashable label value: normalize maps it to the overflow
            children = None
        if children is None:
            children = metric_set.request_children(route, result, retried, model_tier)
        children[0](1)
        if latency_s is not None:
            if trace_id:
                children[1](latency_s, {"trace_id": str(trace_id)[:64]})
            else:
                children[1](latency_s)
    except Exception as exc:
        _failed(exc)


def record_retry(*, reason: str, registry: Any = None) -> None:
    """Count one retry by reason (429_capacity, timeout, 5xx, other)."""
    if registry is None and _active is None and _resolved:  # disabled: the cheapest exit
        return
    # Same body as record_router_fallback, inlined: this is the per-retry hot path.
    try:
        metric_set = (_active if _resolved else _resolve()) if registry is None else _for_registry(registry)
        if metric_set is not None:
            table = metric_set.retries
            ((table.get(reason) if isinstance(reason, str) else None) or table["other"])(1)
    except Exception as exc:
        _failed(exc)


def record_router_fallback(*, reason: str, registry: Any = None) -> None:
    """Count one router fallback by reason."""
    if registry is None and _active is None and _resolved:  # disabled: the cheapest exit
        return
    try:
        metric_set = (_active if _resolved else _resolve()) if registry is None else _for_registry(registry)
        if metric_set is not None:
            table = metric_set.fallbacks
            ((table.get(reason) if isinstance(reason, str) else None) or table["other"])(1)
    except Exception as exc:
        _failed(exc)


def track_in_flight(*, route: str, registry: Any = None) -> ContextManager[None]:
    """Context manager counting a call in flight on `route` while its block runs."""
    if registry is None and _active is None and _resolved:  # disabled: the cheapest exit
        return _NULL
    try:
        metric_set = (_active if _resolved else _resolve()) if registry is None else _for_registry(registry)
        if metric_set is None:
            return _NULL
        tracker = metric_set.in_flight.get(route) if isinstance(route, str) else None
        return tracker or metric_set.in_flight["other"]
    except Exception as exc:
        _failed(exc)
        return _NULL


def metrics_endpoint() -> str | None:
    """``addr:port`` of this process's /metrics server, or None when metrics are off."""
    if _active is None or _settings is None:
        return None
    return f"{_settings.addr}:{_settings.port}"


def _reset_for_tests() -> None:
    """Forget the resolved env state (the server, if any, stays bound until process exit)."""
    global _resolved, _active, _settings, _server, _failed_once, _last
    with _lock:
        _last = (None, None)
        if _server is not None:
            with contextlib.suppress(Exception):
                _server[0].shutdown()
                _server[0].server_close()
        if _ms is not None:
            from prometheus_client import REGISTRY

            _drop_set(REGISTRY)
        _resolved, _active, _settings, _server, _failed_once = False, None, None, None, False
