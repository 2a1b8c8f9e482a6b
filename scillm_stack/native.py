"""Native runtime: each service a subprocess under the state dir (config, data, logs, state).

`up` starts every missing service in parallel, then waits for all to be ready; `down`
stops only processes this stack started (pid plus start time, so a reused pid is never
signalled): SIGTERM to the process group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from scillm_stack import binaries, ports as portlib
from scillm_stack.errors import ComponentError, PortInUseError, ReadinessTimeout, UsageError
from scillm_stack.readiness import Readiness, ReadyResult, wait_all
from scillm_stack.render import Addresses, render_stack
from scillm_stack.spec import SERVICES, Service, Thresholds, Timing

STATE_FILE = "state.json"
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class StackPlan:
    """What `up` should run, and how."""

    services: tuple[str, ...]
    ports: dict[str, int]
    timing: Timing
    thresholds: Thresholds
    demo_scenario: str = "steady"
    demo_rps: float = 5.0
    ready_timeout_s: float = 90.0


@dataclass
class Proc:
    """A started service process as recorded in the state file."""

    name: str
    pid: int
    start_ticks: int
    cmd: list[str]
    log: str
    url: str
    ready_url: str
    version: str = ""
    source: str = ""


@dataclass
class State:
    runtime: str = "native"
    profile: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)


def _start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks (field 22 of /proc/PID/stat), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def read_state(home: Path, runtime: str | None = None) -> State:
    """The state file of the stack in `home` (an empty State when there is none)."""
    path = home / STATE_FILE
    if not path.is_file():
        return State(runtime=runtime or "native")
    raw = json.loads(path.read_text())
    return State(runtime or raw["runtime"], raw.get("profile", ""), raw.get("ports", {}),
                 {name: Proc(**proc) for name, proc in raw.get("procs", {}).items()})


def write_state(home: Path, state: State) -> None:
    """Replace the state file atomically."""
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(home / STATE_FILE)


def is_alive(proc: Proc) -> bool:
    return _start_ticks(proc.pid) == proc.start_ticks


def tail(path: Path | str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"


class NativeRuntime:
    """Subprocess runtime rooted at one state dir."""

    name = "native"

    def __init__(self, home: Path) -> None:
        self.home = home

    # -- state -------------------------------------------------------------------------
    def load(self) -> State:
        return read_state(self.home)

    def save(self, state: State) -> None:
        write_state(self.home, state)

    def log_path(self, service: str) -> Path:
        return self.home / "logs" / f"{service}.log"

    # -- up ----------------------------------------------------------------------------
    def up(self, plan: StackPlan, *, on_event: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
        """Start what is missing, wait for readiness; return a report of what happened."""
        state = self.load()
        running = {name for name, proc in state.procs.items() if is_alive(proc)}
        if running and state.ports and any(state.ports.get(n) != plan.ports.get(n) for n in running):
            raise UsageError(f"this stack already runs with other ports ({self.home})",
                             hint="run `scillm-stack down` first, or use another SCILLM_STACK_HOME")
        # Slowest to become ready first (the Python demo), so its start overlaps the others.
        to_start = [s for s in reversed(SERVICES) if s.name in plan.services and s.name not in running]
        report: dict[str, Any] = {"already_running": sorted(running & set(plan.services)), "started": []}
        if not to_start:
            return report
        commands = {svc.name: self._command(svc, plan) for svc in to_start}  # binaries first: fail early
        self._check_ports(to_start, plan.ports)
        render_stack(self.home / "config", timing=plan.timing, thresholds=plan.thresholds,
                     addresses=Addresses.native(plan.ports), collector="collector" in plan.services)
        state.runtime, state.profile, state.ports = self.name, plan.timing.name, dict(plan.ports)
        started: list[Proc] = []
        try:
            for svc in to_start:
                proc = self._spawn(svc, commands[svc.name], plan)
                started.append(proc)
                state.procs[svc.name] = proc
                self.save(state)
                on_event(f"started {svc.name} (pid {proc.pid})")
            results = self._wait(started, plan, on_event)
        except BaseException:
            self._stop(started)
            for proc in started:
                state.procs.pop(proc.name, None)
            self.save(state)
            raise
        report["started"] = [proc.name for proc in started]
        report["ready_s"] = {r.name: round(r.seconds, 3) for r in results}
        return report

    def _command(self, svc: Service, plan: StackPlan) -> tuple[list[str], binaries.Located | None]:
        values = {
            "listen": f"127.0.0.1:{plan.ports[svc.name]}", "port": str(plan.ports[svc.name]),
            "config": str(self.home / "config" / svc.name), "data": str(self.home / "data" / svc.name),
            "logs": str(self.home / "logs"), "demo_scenario": plan.demo_scenario,
            "demo_rps": f"{plan.demo_rps:g}",
            **{f"{key.split('.')[1]}_port": str(value) for key, value in plan.ports.items()
               if key.startswith(f"{svc.name}.")},
        }
        args = [arg.format(**values) for arg in svc.args]
        if svc.binary is None:
            return [sys.executable, "-m", "scillm_stack", *args], None
        located = binaries.require(svc)
        return [str(located.path), *args], located

    def _check_ports(self, services: list[Service], ports: dict[str, int]) -> None:
        for svc in services:
            keys = [svc.name, *(f"{svc.name}.{extra}" for extra in svc.extra_ports)]
            for key in keys:
                port = ports[key]
                if not portlib.is_free(port):
                    who = portlib.holder(port) or "another process"
                    raise PortInUseError(
                        f"port {port} ({key}) is in use by {who}",
                        hint=f"stop that process, or pick another port with {svc.env_port if key == svc.name else 'SCILLM_STACK_' + key.replace('.', '_').upper() + '_PORT'}",
                    )

    def _spawn(self, svc: Service, command: tuple[list[str], binaries.Located | None], plan: StackPlan) -> Proc:
        cmd, located = command
        for sub in ("data", "logs"):
            (self.home / sub / (svc.name if sub == "data" else "")).mkdir(parents=True, exist_ok=True)
        log_path = self.log_path(svc.name)
        env = dict(os.environ)
        if svc.name == "demo":
            env.update(SCILLM_METRICS="prom", SCILLM_METRICS_ADDR="127.0.0.1",
                       SCILLM_METRICS_PORT=str(plan.ports["demo"]), PYTHONUNBUFFERED="1")
        with log_path.open("ab") as log:
            try:
                popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.home / "data" / svc.name, env=env, start_new_session=True)
            except OSError as exc:
                raise ComponentError(f"cannot start {svc.name}: {exc}", hint="check the binary runs by hand") from None
        url = f"http://127.0.0.1:{plan.ports[svc.name]}"
        return Proc(svc.name, popen.pid, _start_ticks(popen.pid) or 0, cmd, str(log_path), url,
                    url + svc.ready_path, located.version if located else svc.version,
                    located.source if located else "package")

    def _wait(self, started: list[Proc], plan: StackPlan, on_event: Callable[[str], None]) -> list[ReadyResult]:
        by_name = {proc.name: proc for proc in started}
        checks = [Readiness(p.name, p.ready_url, timeout_s=plan.ready_timeout_s) for p in started]
        results = wait_all(checks, alive=lambda name: is_alive(by_name[name]),
                           on_ready=lambda r: on_event(f"{r.name} {'ready' if r.ready else 'NOT ready'} after {r.seconds:.1f}s"))
        failed = [r for r in results if not r.ready]
        if failed:
            details = "\n".join(
                f"{r.name}: {'exited' if not is_alive(by_name[r.name]) else 'no answer'} at "
                f"{by_name[r.name].ready_url}; last log lines ({by_name[r.name].log}):\n{tail(by_name[r.name].log)}"
                for r in failed)
            raise ReadinessTimeout(f"not ready within {plan.ready_timeout_s:g}s:\n{details}",
                                   hint="read the log lines above; `scillm-stack logs SERVICE` shows the whole log")
        return results

    # -- down / status -------------------------------------------------------------------
    def _stop(self, procs: list[Proc]) -> list[str]:
        alive = [p for p in procs if is_alive(p)]
        for proc in alive:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(is_alive(p) for p in alive):
            self._reap()
            time.sleep(0.1)
        for proc in alive:
            if is_alive(proc):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self._reap()
        return [p.name for p in alive]

    @staticmethod
    def _reap() -> None:
        """Collect our own exited children so they do not linger as zombies."""
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass

    def logs(self, service: str, *, lines: int, follow: bool) -> Iterator[str]:
        """The last `lines` lines of a service's log, then new ones while `follow`."""
        path = self.log_path(service)
        if not path.is_file():
            raise UsageError(f"no log for {service} at {path}", hint="is the stack up? `scillm-stack status`")
        with path.open(errors="replace") as handle:
            yield from handle.readlines()[-lines:]
            while follow:
                line = handle.readline()
                if line:
                    yield line
                else:
                    time.sleep(0.3)

    def down(self, *, volumes: bool = False) -> list[str]:
        """Stop every service this stack started; return their names (`volumes` drops data)."""
        state = self.load()
        stopped = self._stop(list(state.procs.values()))
        state.procs = {}
        self.save(state)
        if volumes:
            shutil.rmtree(self.home / "data", ignore_errors=True)
        return stopped

    def status(self) -> list[dict[str, Any]]:
        state = self.load()
        rows = []
        for name, proc in state.procs.items():
            alive = is_alive(proc)
            ready = alive and Readiness(name, proc.ready_url).probe()
            rows.append({"service": name, "state": "running" if alive else "exited", "ready": ready,
                         "pid": proc.pid, "url": proc.url, "version": proc.version, "source": proc.source,
                         "log": proc.log})
        return rows
