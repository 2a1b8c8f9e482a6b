"""The stack spec: every service's version, port, binary, args and readiness, as data.

Versions, default ports, alert thresholds and timing profiles live here and nowhere else;
config rendering, both runtimes, the compose file, the rules and the tests read them.
Ports and thresholds can be overridden through the environment (see `ENV_*` below).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Mapping

from scillm_stack.errors import UsageError


@dataclass(frozen=True)
class InstallSource:
    """Where `scillm-stack install` gets a component: release archive, else Go module proxy."""

    archive_url: str  # {version} {arch} filled in; the host may be replaced by a mirror
    checksums_url: str  # the release's sha256sums file
    archive_members: Mapping[str, str]  # binary -> path inside the archive
    go_module: str
    go_version: str  # module version of the pinned release
    go_packages: Mapping[str, str]  # binary -> package inside the module
    ldflags: str = ""  # {version} {go_version} filled in


@dataclass(frozen=True)
class Service:
    """One component of the stack."""

    name: str
    version: str
    image: str
    port: int
    ready_path: str
    binary: str | None = None  # native executable; None for the in-package demo
    min_version: str | None = None  # oldest version accepted from PATH
    args: tuple[str, ...] = ()  # {listen} {config} {data} {logs} {port} and extra ports are filled in
    description: str = ""
    depends_on: tuple[str, ...] = ()
    extra_ports: Mapping[str, int] = field(default_factory=dict)
    install: InstallSource | None = None
    installed_by: str | None = None  # another component whose install provides `binary`

    @property
    def component(self) -> str:
        """The installable component that provides this service's binary."""
        return self.installed_by or self.name

    @property
    def env_port(self) -> str:
        return f"SCILLM_STACK_{self.name.upper()}_PORT"


PROMETHEUS = Service(
    "prometheus", "3.14.0", "prom/prometheus:v3.14.0", 9090, "/-/ready", binary="prometheus",
    min_version="2.33.0",  # remote-write receiver and exemplar storage
    args=(
        "--config.file={config}/prometheus.yml", "--storage.tsdb.path={data}",
        "--web.listen-address={listen}", "--enable-feature=exemplar-storage",
        "--web.enable-remote-write-receiver", "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=2d",
    ),
    description="Prometheus: scrapes the demo, evaluates the SciLLM rules",
    install=InstallSource(
        archive_url="https://github.com/prometheus/prometheus/releases/download/v{version}/prometheus-{version}.linux-{arch}.tar.gz",
        checksums_url="https://github.com/prometheus/prometheus/releases/download/v{version}/sha256sums.txt",
        archive_members={"prometheus": "prometheus-{version}.linux-{arch}/prometheus",
                         "promtool": "prometheus-{version}.linux-{arch}/promtool"},
        go_module="github.com/prometheus/prometheus", go_version="v0.314.0",
        go_packages={"prometheus": "./cmd/prometheus", "promtool": "./cmd/promtool"},
        ldflags=("-s -w -X github.com/prometheus/common/version.Version={version} "
                 "-X github.com/prometheus/common/version.Revision={go_version} "
                 "-X github.com/prometheus/common/version.Branch=HEAD "
                 "-X github.com/prometheus/common/version.BuildUser=scillm-stack"),
    ),
)
# Scrapes the demo and remote-writes to Prometheus, as the seed's Grafana Agent pattern does.
# It is Prometheus in agent mode: Grafana Agent and Alloy compile in Loki's AGPL code, which
# this project may not fetch. Remote-written samples carry collector="prometheus-agent".
COLLECTOR = Service(
    "collector", PROMETHEUS.version, PROMETHEUS.image, 12345, "/-/ready", binary="prometheus",
    min_version="3.0.0", installed_by="prometheus",
    args=(
        "--agent", "--config.file={config}/collector.yml", "--storage.agent.path={data}",
        "--web.listen-address={listen}", "--enable-feature=exemplar-storage",
    ),
    description="collector: Prometheus agent mode, scrapes the demo, remote_write to Prometheus",
    depends_on=("prometheus",),
)
COLLECTOR_LABEL = ("collector", "prometheus-agent")

DEMO = Service(
    "demo", "0.1.0", "scillm-stack/demo:0.1.0", 9464, "/metrics",
    args=("demo", "--control-port={control_port}", "--log-file={logs}/demo.jsonl",
          "--scenario={demo_scenario}", "--rps={demo_rps}"),
    description="fake LLM upstream + instrumented SciLLM load, /metrics via the telemetry env",
    extra_ports={"control": 9465},
)

SERVICES: tuple[Service, ...] = (PROMETHEUS, COLLECTOR, DEMO)


def service(name: str) -> Service:
    for svc in SERVICES:
        if svc.name == name:
            return svc
    raise UsageError(f"unknown service {name!r}", hint=f"choose one of: {', '.join(s.name for s in SERVICES)}")


def _env_int(name: str, default: int, *, low: int = 1, high: int = 65535) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise UsageError(f"{name}={raw!r} is not a number from {low} to {high}",
                         hint=f"set {name} to a free TCP port, or unset it for the default {default}")
    return int(raw)


def ports() -> dict[str, int]:
    """Port of each service (and extra ports as `service.extra`), env overrides applied."""
    result: dict[str, int] = {}
    for svc in SERVICES:
        result[svc.name] = _env_int(svc.env_port, svc.port)
        for extra, default in svc.extra_ports.items():
            result[f"{svc.name}.{extra}"] = _env_int(f"SCILLM_STACK_{svc.name.upper()}_{extra.upper()}_PORT", default)
    return result


@dataclass(frozen=True)
class Thresholds:
    """The seed's alert thresholds X, Y and Z."""

    capacity_retry_rps: float = 1.0  # X: 429/capacity retries per second
    latency_p95_s: float = 2.0  # Y: p95 latency of a whole call, seconds
    fallback_rps: float = 1.0  # Z: router fallbacks per second

    ENV = {
        "capacity_retry_rps": "SCILLM_STACK_ALERT_CAPACITY_RPS",
        "latency_p95_s": "SCILLM_STACK_ALERT_LATENCY_P95_S",
        "fallback_rps": "SCILLM_STACK_ALERT_FALLBACK_RPS",
    }

    @classmethod
    def from_env(cls, **overrides: float | None) -> Thresholds:
        """Defaults, then env vars, then explicit (CLI) overrides; all must be > 0."""
        values = {}
        for name, env in cls.ENV.items():
            raw = overrides.get(name)
            source = f"--{name.replace('_', '-')}"
            if raw is None and os.environ.get(env, "").strip():
                raw, source = os.environ[env].strip(), env
            if raw is None:
                continue
            try:
                value = float(raw)
            except ValueError:
                value = -1.0
            if not value > 0:
                raise UsageError(f"{source}={raw!r} is not a positive number",
                                 hint=f"give {source} a number above 0, e.g. {getattr(cls(), name)}")
            values[name] = value
        return replace(cls(), **values)


@dataclass(frozen=True)
class Timing:
    """Scrape/evaluation intervals and rule windows of one timing profile."""

    name: str
    scrape_interval: str
    evaluation_interval: str
    window: str  # the seed's [5m]
    capacity_window: str  # the seed's [15m]
    for_: str  # how long an alert condition holds before firing


TIMINGS: Mapping[str, Timing] = {
    "production": Timing("production", "15s", "15s", "5m", "15m", "5m"),
    # Compressed: same rules, windows short enough that each alert fires within seconds.
    "fast": Timing("fast", "1s", "1s", "10s", "20s", "3s"),
}


def timing(name: str) -> Timing:
    try:
        return TIMINGS[name]
    except KeyError:
        raise UsageError(f"unknown timing profile {name!r}", hint=f"choose one of: {', '.join(TIMINGS)}") from None
