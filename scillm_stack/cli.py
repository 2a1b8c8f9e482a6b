"""The `scillm-stack` command line: parse, call domain code, print."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import requests
import typer
from rich.console import Console
from rich.table import Table

from scillm_stack import __version__, spec, telemetry
from scillm_stack.errors import ScillmStackError, UsageError
from scillm_stack.load import BatchLog, LoadPlan, LoadSummary, demo_api_key, run_load, start_upstream
from scillm_stack.native import StackPlan
from scillm_stack.runtime import Runtime, current as runtime_for, for_up
from scillm_stack.paths import state_home
from scillm_stack.scenarios import SCENARIOS

app = typer.Typer(
    name="scillm-stack", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Local observability stack and test target for SciLLM telemetry.",
)
out = Console()
err = Console(stderr=True)

ScenarioName = Enum("ScenarioName", {name.replace("-", "_"): name for name in SCENARIOS}, type=str)  # type: ignore[misc]
ProfileName = Enum("ProfileName", {name: name for name in spec.TIMINGS}, type=str)  # type: ignore[misc]


class RuntimeName(str, Enum):
    native = "native"
    docker = "docker"
    auto = "auto"


def _version(value: bool) -> None:
    if value:
        out.print(f"scillm-stack {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Local observability stack and test target for SciLLM telemetry."""


def _runtime() -> Runtime:
    """The runtime of the stack in the state dir (the one it was started with)."""
    return runtime_for(state_home())


@app.command()
def up(
    runtime: Annotated[RuntimeName, typer.Option(help="Where services run: docker, native, or auto (Docker when a daemon answers).", envvar="SCILLM_STACK_RUNTIME")] = RuntimeName.auto,
    profile: Annotated[ProfileName, typer.Option(help="Timing: fast (1 s scrape, short windows) or production.",
                                                 envvar="SCILLM_STACK_PROFILE")] = ProfileName.fast,  # type: ignore[attr-defined]
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="Run the demo load generator.")] = True,
    collector: Annotated[bool, typer.Option("--collector/--no-collector",
                                            help="Send the demo's metrics through the collector's remote_write (else Prometheus scrapes it).")] = True,
    demo_scenario: Annotated[ScenarioName, typer.Option(help="Scenario the demo runs by default.")] = ScenarioName.steady,  # type: ignore[attr-defined]
    demo_rps: Annotated[float, typer.Option(min=0.1, max=200, help="Requests per second of the demo.")] = 5.0,
    alert_capacity_rps: Annotated[Optional[float], typer.Option(help="X: capacity retries/s that fire SciLLMHighCapacityRetries. Env SCILLM_STACK_ALERT_CAPACITY_RPS.")] = None,
    alert_latency_p95_s: Annotated[Optional[float], typer.Option(help="Y: p95 seconds that fire SciLLMLatencyP95High. Env SCILLM_STACK_ALERT_LATENCY_P95_S.")] = None,
    alert_fallback_rps: Annotated[Optional[float], typer.Option(help="Z: fallbacks/s that fire SciLLMRouterFallbackSpike. Env SCILLM_STACK_ALERT_FALLBACK_RPS.")] = None,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for readiness.")] = 90.0,
) -> None:
    """Start the stack (Prometheus and the demo) and wait until every service is ready."""
    thresholds = spec.Thresholds.from_env(capacity_retry_rps=alert_capacity_rps,
                                          latency_p95_s=alert_latency_p95_s, fallback_rps=alert_fallback_rps)
    skipped = {name for name, wanted in (("demo", demo), ("collector", collector)) if not wanted}
    services = tuple(s.name for s in spec.SERVICES if s.name not in skipped)
    plan = StackPlan(services=services, ports=spec.ports(), timing=spec.timing(profile.value),
                     thresholds=thresholds, demo_scenario=demo_scenario.value, demo_rps=demo_rps,
                     ready_timeout_s=timeout)
    state = _runtime().load()
    if state.procs and state.runtime != runtime.value and runtime.value != "auto":
        raise UsageError(f"this stack was started with the {state.runtime} runtime",
                         hint="run `scillm-stack down` first, or use another SCILLM_STACK_HOME")
    rt, why = (_runtime(), f"already {state.runtime}") if state.procs else for_up(runtime.value, state_home())
    err.print(f"runtime: {rt.name} ({why}); state dir {rt.home}")
    started = time.monotonic()
    report = rt.up(plan, on_event=lambda msg: err.print(f"  {msg}"))
    if report["already_running"]:
        err.print(f"already running: {', '.join(report['already_running'])}")
    if report["started"]:
        err.print(f"[green]ready[/] in {time.monotonic() - started:.1f}s: {', '.join(report['started'])}")
    _print_urls(plan.ports)


def _print_urls(ports: dict[str, int]) -> None:
    out.print(f"Prometheus  http://127.0.0.1:{ports['prometheus']}")
    out.print(f"collector   http://127.0.0.1:{ports['collector']}  (Prometheus agent mode, remote_write)")
    out.print(f"demo        http://127.0.0.1:{ports['demo']}/metrics  (control :{ports['demo.control']})")


@app.command()
def down(
    volumes: Annotated[bool, typer.Option("--volumes", help="Also delete the stack's data.")] = False,
) -> None:
    """Stop every service this stack started."""
    stopped = _runtime().down(volumes=volumes)
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show each service: state, readiness, pid, URL."""
    rows = _runtime().status()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no stack here (run `scillm-stack up`)")
        return
    table = Table("service", "state", "ready", "pid", "version", "url")
    for row in rows:
        table.add_row(row["service"], row["state"], "yes" if row["ready"] else "no", str(row["pid"]),
                      f"{row['version']} ({row['source']})", row["url"])
    out.print(table)


@app.command()
def urls() -> None:
    """Print the stack's URLs."""
    state = _runtime().load()
    _print_urls(state.ports or spec.ports())


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="Service name, e.g. prometheus or demo.")],
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, help="Lines to show first.")] = 50,
) -> None:
    """Show a service's log."""
    spec.service(service)
    try:
        for line in _runtime().logs(service, lines=lines, follow=follow):
            sys.stdout.write(line)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass


@app.command()
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    strict: Annotated[bool, typer.Option(help="Every declared label value must have been counted (> 0).")] = False,
    wait: Annotated[float, typer.Option(min=0, help="Seconds to keep re-checking while anything fails (a fresh stack needs a few scrapes).")] = 60.0,
    lookback: Annotated[str, typer.Option(help="Window for --strict counts, a PromQL duration.")] = "1h",
    prometheus_url: Annotated[Optional[str], typer.Option(help="Prometheus to check (default: this stack's).",
                                                          envvar="SCILLM_STACK_PROMETHEUS_URL")] = None,
) -> None:
    """Query every contract series, seed PromQL example and alert expression; exit 1 on failure."""
    from scillm_stack.check import settled_checks
    from scillm_stack.promql import Prometheus

    state = _runtime().load()
    url = prometheus_url or f"http://127.0.0.1:{(state.ports or spec.ports())['prometheus']}"
    timing = spec.timing(state.profile or "fast")
    prom = Prometheus(url)
    results = settled_checks(prom, wait_s=wait, window=timing.window, capacity_window=timing.capacity_window,
                             strict=strict, lookback=lookback)
    failed = [r for r in results if not r.passed]
    if as_json:
        out.print_json(json.dumps([r.as_dict() for r in results]))
    else:
        table = Table("kind", "value", "result", "check", "reason / note")
        table.columns[3].overflow = table.columns[4].overflow = "fold"
        for r in results:
            table.add_row(r.check.kind, "-" if r.value is None else f"{r.value:.4g}",
                          "[green]pass[/]" if r.passed else "[red]FAIL[/]", r.check.name, r.reason or r.note)
        out.print(table)
        out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(1)


def _validate_url(url: str | None, flag: str) -> str | None:
    if url is not None and not url.startswith(("http://", "https://")):
        raise UsageError(f"{flag}={url!r} is not an http(s) URL", hint=f"e.g. {flag} http://127.0.0.1:8000")
    return url.rstrip("/") if url else None


def _summary_table(summary: LoadSummary) -> Table:
    table = Table("run_id", "scenario", "status", "requests", "ok", "error", "retries", "fallbacks",
                  "p50 s", "p95 s", title="load summary")
    p50, p95 = summary.quantile(0.5), summary.quantile(0.95)
    table.add_row(summary.run_id, summary.scenario, summary.status, str(summary.requests),
                  str(summary.results.get("ok", 0)), str(summary.results.get("error", 0)),
                  ", ".join(f"{k}={v}" for k, v in sorted(summary.retries.items())) or "0",
                  ", ".join(f"{k}={v}" for k, v in sorted(summary.fallbacks.items())) or "0",
                  "-" if p50 is None else f"{p50:.3f}", "-" if p95 is None else f"{p95:.3f}")
    return table


@app.command()
def load(
    scenario: Annotated[ScenarioName, typer.Option(help="Scenario to run.")] = ScenarioName.steady,  # type: ignore[attr-defined]
    rps: Annotated[float, typer.Option(min=0.1, max=500, help="Requests per second.")] = 10.0,
    duration: Annotated[float, typer.Option(min=0.1, max=86400, help="Seconds to run (the run stops by itself).")] = 30.0,
    max_requests: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many requests.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=512, help="Most requests in flight at once.")] = 32,
    upstream: Annotated[Optional[str], typer.Option(help="Use this OpenAI-compatible upstream instead of starting the fake one.")] = None,
    log_file: Annotated[Optional[Path], typer.Option(help="JSON-lines log (default: <state dir>/logs/load.jsonl).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for the traffic mix.")] = None,
) -> None:
    """Run a bounded load scenario through the instrumented client; /metrics via SCILLM_METRICS*."""
    upstream_url = _validate_url(upstream, "--upstream")
    if telemetry.init_from_env():
        err.print(f"serving /metrics on {telemetry.metrics_endpoint()}")
    elif os.environ.get(telemetry.ENV_ENABLE, "").strip():
        err.print("metrics off (see the warning above)")
    else:
        err.print("metrics off (set SCILLM_METRICS=prom to serve /metrics)")
    fake = None if upstream_url else start_upstream(seed)
    log = BatchLog(log_file or state_home() / "logs" / "load.jsonl")
    plan = LoadPlan(SCENARIOS[scenario.value], rps=rps, duration_s=duration, max_requests=max_requests,
                    concurrency=concurrency, seed=seed)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    last = [0.0]

    def progress(summary: LoadSummary, fraction: float) -> None:
        if time.monotonic() - last[0] >= 1.0:
            last[0] = time.monotonic()
            err.print(f"  {fraction:4.0%}  requests {summary.requests}  ok {summary.results.get('ok', 0)}  "
                      f"error {summary.results.get('error', 0)}", highlight=False)

    try:
        summary = run_load(plan, upstream_url=upstream_url or fake.url, api_key=demo_api_key(), log=log,
                           stop=stop, progress=progress)
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    finally:
        log.close()
        if fake is not None:
            fake.stop()
    out.print(_summary_table(summary))


@app.command()
def scenario(
    name: Annotated[ScenarioName, typer.Argument(help="Scenario for the running demo.")],
    rps: Annotated[float, typer.Option(min=0.1, max=200, help="Requests per second.")] = 10.0,
    duration: Annotated[float, typer.Option(min=1, max=3600, help="Seconds to run it.")] = 60.0,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the run to end and print its summary.")] = True,
) -> None:
    """Switch the running demo to a scenario for a while (then it returns to its default)."""
    from scillm_stack.demo.control import DemoControl

    state = _runtime().load()
    control = DemoControl(f"http://127.0.0.1:{(state.ports or spec.ports())['demo.control']}")
    run_id = control.run(name.value, rps=rps, duration_s=duration)
    err.print(f"demo runs {name.value} as run {run_id}")
    if wait:
        out.print_json(json.dumps(control.wait(run_id, timeout_s=duration + 60)))


@app.command()
def install(
    components: Annotated[Optional[list[str]], typer.Argument(help="Components to install (default: all).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="Show each component, version and where it came from.")] = False,
    force: Annotated[bool, typer.Option(help="Ignore PATH and cache; download or build again.")] = False,
) -> None:
    """Install pinned component binaries: PATH, cache, release archive, else build from the Go proxy."""
    from scillm_stack import install as installer

    if list_:
        table = Table("component", "version", "source", "directory", "build s", "peak MB", "size MB")
        for row in installer.listing():
            size = sum(row["binaries"].values()) / 1e6 if row["binaries"] else None  # type: ignore[union-attr]
            table.add_row(str(row["component"]), str(row["version"]), str(row["source"]), str(row["directory"]),
                          str(row["build_s"] or "-"), str(row["peak_rss_mb"] or "-"),
                          "-" if size is None else f"{size:.0f}")
        out.print(table)
        return
    chosen = [installer.component(name) for name in components] if components else installer.installable()
    for svc in chosen:
        done = installer.install(svc, say=lambda msg: err.print(f"  {msg}", highlight=False), force=force)
        extra = f" in {done.build_s:g}s, peak {done.peak_rss_mb:g} MB" if done.build_s else ""
        out.print(f"{svc.name} {svc.version}: {done.source} ({done.directory}){extra}")


images_app = typer.Typer(no_args_is_help=True, help="Images of the Docker runtime, built locally.")
app.add_typer(images_app, name="images")


@images_app.command("build")
def images_build(
    force: Annotated[bool, typer.Option(help="Rebuild even when an image is current.")] = False,
) -> None:
    """Build prom/prometheus (from the install cache) and the demo image (from this Python)."""
    from scillm_stack import images

    for built in images.build_all(images.client(), force=force, say=lambda msg: err.print(f"  {msg}")):
        out.print(f"{built.image}: {built.action} ({built.seconds:.1f}s, {built.size_mb:.0f} MB)")


@app.command()
def compose(
    write: Annotated[bool, typer.Option("--write", help="Write docker-compose.yml here and render the configs it mounts into ./.scillm-stack.")] = False,
    profile: Annotated[ProfileName, typer.Option(help="Timing of the configs --write renders.",
                                                 envvar="SCILLM_STACK_PROFILE")] = ProfileName.fast,  # type: ignore[attr-defined]
) -> None:
    """Print the docker-compose.yml rendered from the stack spec (or write it with --write)."""
    from scillm_stack import compose as composer

    if not write:
        sys.stdout.write(composer.render_compose())
        return
    path = composer.write(Path.cwd(), profile=profile.value, thresholds=spec.Thresholds.from_env())
    out.print(f"wrote {path} and the configs under {path.parent / composer.LOCAL_DIR}; "
              "then `scillm-stack images build` and `docker compose up -d`")


def _format_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> str:
    """Warnings to a CLI user: one line, no source location."""
    return f"warning: {message}\n"


def main() -> None:
    """Console entry point: our errors print as one message and exit 1, no traceback."""
    warnings.formatwarning = _format_warning  # type: ignore[assignment]
    try:
        app()
    except ScillmStackError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except requests.RequestException as exc:
        err.print(f"[red]error:[/] network: {exc}", highlight=False)
        sys.exit(1)
