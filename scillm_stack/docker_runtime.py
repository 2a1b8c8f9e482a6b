"""Docker runtime: each service a labelled container on the stack's own network.

Everything it creates (network, containers, volumes) carries `scillm-stack.stack=<id>`, the
id a hash of the state dir, so stacks never collide and `down` removes only its own. Configs
are rendered into `<home>/config` with service DNS names and mounted read-only, data lives
in named volumes, the demo writes its batch log into `<home>/logs` (a bind mount), ports are
published on 127.0.0.1 only, and readiness is polled from the host as the native runtime does.
Docker and HTTP errors become ScillmStackError subclasses here, with a hint.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import docker
import docker.errors
import requests

from scillm_stack import images, ports as portlib
from scillm_stack.containers import (CONFIG_MOUNT, DATA_MOUNT, HOME_LABEL, LOGS_MOUNT, SERVICE_LABEL, STACK_LABEL,
                                     URL_LABEL, container_command, mentions, published_ports)
from scillm_stack.errors import (ComponentError, DockerUnavailableError, PortInUseError, ReadinessTimeout,
                                 ScillmStackError, UsageError)
from scillm_stack.native import Proc, StackPlan, State, read_state, write_state
from scillm_stack.readiness import Readiness, ReadyResult, wait_all
from scillm_stack.render import Addresses, render_stack
from scillm_stack.spec import SERVICES, Service

STOP_GRACE_S = 10
UNAVAILABLE_HINT = ("start the Docker engine (`sudo systemctl start docker`, or `sudo dockerd &`), "
                    "check DOCKER_HOST, or use `--runtime native`")


def connect(timeout: float = 10.0) -> docker.DockerClient:
    """A client of the Docker engine (DOCKER_HOST or the local socket) that answers a ping."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        where = os.environ.get("DOCKER_HOST") or "the local socket"
        raise DockerUnavailableError(f"no Docker engine answers at {where}: {exc}", hint=UNAVAILABLE_HINT) from None
    return client


def docker_available() -> bool:
    """True when a Docker daemon answers a ping within a few seconds."""
    try:
        connect(timeout=3.0).close()
    except DockerUnavailableError:
        return False
    return True


def stack_id(home: Path) -> str:
    """The label value that tells this stack's Docker resources from any other's."""
    return hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]


class DockerRuntime:
    """Container runtime rooted at one state dir."""

    name = "docker"

    def __init__(self, home: Path, client: docker.DockerClient | None = None) -> None:
        self.home = home
        self.id = stack_id(home)
        self._client = client

    @property
    def api(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect()
        return self._client

    # -- names, labels, state ------------------------------------------------------------
    @property
    def network_name(self) -> str:
        return f"scillm-{self.id}"

    def container_name(self, service: str) -> str:
        return f"scillm-{self.id}-{service}"

    def volume_name(self, service: str) -> str:
        return f"scillm-{self.id}-{service}-data"

    def labels(self, **extra: str) -> dict[str, str]:
        return {STACK_LABEL: self.id, HOME_LABEL: str(self.home), **extra}

    def _filters(self) -> dict[str, str]:
        return {"label": f"{STACK_LABEL}={self.id}"}

    def containers(self) -> dict[str, Any]:
        """This stack's containers by service name, running or not."""
        found = self._call(lambda: self.api.containers.list(all=True, filters=self._filters()), "list containers")
        return {c.labels.get(SERVICE_LABEL, c.name): c for c in found}

    def _read_state(self) -> State:
        return read_state(self.home, self.name)

    def save(self, state: State) -> None:
        write_state(self.home, state)

    def load(self) -> State:
        """The state file, with `procs` narrowed to containers that run (when Docker answers)."""
        state = self._read_state()
        try:
            live = self.containers()
        except DockerUnavailableError:
            return state
        state.procs = {name: proc for name, proc in state.procs.items()
                       if name in live and live[name].status == "running"}
        return state

    @staticmethod
    def _call(action: Callable[[], Any], what: str) -> Any:
        """Run a Docker call; engine and transport errors become ours."""
        try:
            return action()
        except docker.errors.APIError as exc:
            raise ComponentError(f"docker: cannot {what}: {exc.explanation or exc}",
                                 hint="check `docker info` and the daemon's log") from None
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise DockerUnavailableError(f"docker: cannot {what}: {exc}", hint=UNAVAILABLE_HINT) from None

    # -- up ----------------------------------------------------------------------------
    def up(self, plan: StackPlan, *, on_event: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
        """Start what is missing, wait for readiness; return a report of what happened."""
        state = self._read_state()
        existing = self.containers()
        running = {name for name, c in existing.items() if c.status == "running"}
        if running and state.ports and any(state.ports.get(n) != plan.ports.get(n) for n in running):
            raise UsageError(f"this stack already runs with other ports ({self.home})",
                             hint="run `scillm-stack down` first, or use another SCILLM_STACK_HOME")
        to_start = [s for s in SERVICES if s.name in plan.services and s.name not in running]
        report: dict[str, Any] = {"already_running": sorted(running & set(plan.services)), "started": []}
        if not to_start:
            return report
        self._ensure_images(to_start, on_event)
        self._check_ports(to_start, plan.ports)
        self._remove([existing[s.name] for s in to_start if s.name in existing])  # exited leftovers
        render_stack(self.home / "config", timing=plan.timing, thresholds=plan.thresholds,
                     addresses=Addresses.docker(), collector="collector" in plan.services)
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        state.profile, state.ports = plan.timing.name, dict(plan.ports)
        self.save(state)  # from here on `down` goes through this runtime, even if up is cut short
        try:
            network = self._network()
            with ThreadPoolExecutor(max_workers=len(to_start)) as pool:
                started = list(pool.map(lambda svc: self._run(svc, plan, network), to_start))
            for svc, container in zip(to_start, started):
                state.procs[svc.name] = self._proc(svc, plan, container)
                on_event(f"started {svc.name} (container {container.short_id})")
            self.save(state)
            results = self._wait([state.procs[s.name] for s in to_start], plan, on_event)
        except BaseException:
            on_event("up did not finish: removing the containers it created")
            with contextlib.suppress(ScillmStackError):  # the original error says more
                self._abort(to_start, state)
            raise
        report["started"] = [s.name for s in to_start]
        report["ready_s"] = {r.name: round(r.seconds, 3) for r in results}
        return report

    def _abort(self, services: list[Service], state: State) -> None:
        """Remove what a failed or interrupted `up` created, so nothing half-started runs."""
        live = self.containers()
        self._remove([live[s.name] for s in services if s.name in live], grace_s=0)
        for svc in services:
            state.procs.pop(svc.name, None)
        self.save(state)
        if not self.containers():
            self._remove_networks()

    def _ensure_images(self, services: list[Service], on_event: Callable[[str], None]) -> None:
        """Our demo image is built here when missing or stale; others are pulled, else the fix."""
        for image in dict.fromkeys(s.image for s in services):
            if any(s.image == image and s.binary is None for s in services):
                built = images.build_demo(self.api, say=on_event)
                if built.action == "built":
                    on_event(f"built {image} in {built.seconds:.1f}s ({built.size_mb:.0f} MB)")
                continue
            if self._call(lambda: self._has_image(image), f"inspect image {image}"):
                continue
            on_event(f"pulling {image}")
            try:
                self.api.images.pull(image)
            except docker.errors.APIError as exc:
                raise ComponentError(f"image {image} is not here and cannot be pulled: {exc.explanation or exc}",
                                     hint=images.BUILD_HINT) from None

    def _has_image(self, image: str) -> bool:
        try:
            self.api.images.get(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def _check_ports(self, services: list[Service], ports: dict[str, int]) -> None:
        for svc in services:
            for key in (svc.name, *(f"{svc.name}.{extra}" for extra in svc.extra_ports)):
                if not portlib.is_free(ports[key]):
                    who = portlib.holder(ports[key]) or "another process"
                    env = f"SCILLM_STACK_{key.replace('.', '_').upper()}_PORT"
                    raise PortInUseError(f"port {ports[key]} ({key}) is in use by {who}",
                                         hint=f"stop that process, or pick another port with {env}")

    def _network(self) -> str:
        if not self._call(lambda: self.api.networks.list(names=[self.network_name], filters=self._filters()),
                          "list networks"):
            self._call(lambda: self.api.networks.create(self.network_name, driver="bridge", labels=self.labels()),
                       f"create network {self.network_name}")
        return self.network_name

    def _mounts(self, svc: Service) -> dict[str, dict[str, str]]:
        """Read-only config, a labelled named volume for data, the host's logs dir."""
        mounts = {}
        if mentions(svc, "config"):
            mounts[str(self.home / "config" / svc.name)] = {"bind": CONFIG_MOUNT.format(service=svc.name), "mode": "ro"}
        if mentions(svc, "data"):
            volume = self.volume_name(svc.name)
            try:
                self.api.volumes.get(volume)
            except docker.errors.NotFound:
                self._call(lambda: self.api.volumes.create(volume, labels=self.labels(**{SERVICE_LABEL: svc.name})),
                           f"create volume {volume}")
            mounts[volume] = {"bind": DATA_MOUNT, "mode": "rw"}
        if mentions(svc, "logs"):
            mounts[str(self.home / "logs")] = {"bind": LOGS_MOUNT, "mode": "rw"}
        return mounts

    def _run(self, svc: Service, plan: StackPlan, network: str) -> Any:
        command = container_command(svc, demo_scenario=plan.demo_scenario, demo_rps=plan.demo_rps)
        published = {port: ("127.0.0.1", host) for port, host in published_ports(svc, plan.ports).items()}
        options: dict[str, Any] = {}
        if svc.binary:
            options["entrypoint"] = [f"/bin/{svc.binary}"]
        else:  # our own image: run as the host user, so the logs it writes are the user's
            options["user"] = f"{os.getuid()}:{os.getgid()}"
        try:
            return self.api.containers.run(
                svc.image, command,
                name=self.container_name(svc.name), detach=True, network=network,
                networking_config={network: self.api.api.create_endpoint_config(aliases=[svc.name])},
                labels=self.labels(**{SERVICE_LABEL: svc.name, URL_LABEL: f"http://127.0.0.1:{plan.ports[svc.name]}"}),
                ports=published, volumes=self._mounts(svc), **options)
        except docker.errors.ImageNotFound:
            raise ComponentError(f"image {svc.image} is missing", hint=images.BUILD_HINT) from None
        except docker.errors.APIError as exc:
            message = str(exc.explanation or exc)
            if "already allocated" in message or "address already in use" in message:
                raise PortInUseError(f"cannot publish a port of {svc.name}: {message}",
                                     hint="stop what holds it, or pick other ports with SCILLM_STACK_*_PORT") from None
            raise ComponentError(f"cannot start {svc.name}: {message}",
                                 hint="see `docker info`; `scillm-stack down` removes a half-started stack") from None

    def _proc(self, svc: Service, plan: StackPlan, container: Any) -> Proc:
        url = f"http://127.0.0.1:{plan.ports[svc.name]}"
        return Proc(svc.name, 0, 0, list(container.attrs["Args"]), f"docker logs {container.name}", url,
                    url + svc.ready_path, svc.version, self._source(svc.image))

    def _source(self, image: str) -> str:
        try:
            labels = self.api.images.get(image).labels or {}
        except docker.errors.DockerException:
            return "image"
        return "image, built locally" if labels.get(images.BUILT_LABEL) else "image, pulled"

    def _running(self, service: str) -> bool:
        try:
            container = self.api.containers.get(self.container_name(service))
        except docker.errors.DockerException:
            return False
        return container.status == "running"

    def _tail(self, service: str, lines: int = 15) -> str:
        try:
            raw = self.api.containers.get(self.container_name(service)).logs(tail=lines)
        except docker.errors.DockerException:
            return "(no log)"
        return raw.decode(errors="replace").rstrip() or "(empty log)"

    def _wait(self, procs: list[Proc], plan: StackPlan, on_event: Callable[[str], None]) -> list[ReadyResult]:
        checks = [Readiness(p.name, p.ready_url, timeout_s=plan.ready_timeout_s) for p in procs]
        results = wait_all(checks, alive=self._running,
                           on_ready=lambda r: on_event(f"{r.name} {'ready' if r.ready else 'NOT ready'} after {r.seconds:.1f}s"))
        failed = [r for r in results if not r.ready]
        if failed:
            by_name = {p.name: p for p in procs}
            details = "\n".join(
                f"{r.name}: {'no answer' if self._running(r.name) else 'exited'} at {by_name[r.name].ready_url}; "
                f"last log lines (docker logs {self.container_name(r.name)}):\n{self._tail(r.name)}" for r in failed)
            raise ReadinessTimeout(f"not ready within {plan.ready_timeout_s:g}s:\n{details}",
                                   hint="read the log lines above; `scillm-stack logs SERVICE` shows the whole log")
        return results

    # -- down / status / logs ---------------------------------------------------------------
    def _remove(self, containers: list[Any], grace_s: int = STOP_GRACE_S) -> None:
        """Stop (SIGTERM, then SIGKILL after `grace_s`) and remove containers, in parallel."""
        def remove(container: Any) -> None:
            try:
                if grace_s and container.status == "running":
                    container.stop(timeout=grace_s)
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
        with ThreadPoolExecutor(max_workers=max(1, len(containers))) as pool:
            list(pool.map(lambda c: self._call(lambda: remove(c), f"remove {c.name}"), containers))

    def _remove_networks(self) -> None:
        for network in self._call(lambda: self.api.networks.list(filters=self._filters()), "list networks"):
            self._call(network.remove, f"remove network {network.name}")

    def down(self, *, volumes: bool = False) -> list[str]:
        """Remove this stack's containers and network (and data volumes); return the services."""
        live = self.containers()
        self._remove(list(live.values()))
        self._remove_networks()
        if volumes:
            for volume in self._call(lambda: self.api.volumes.list(filters=self._filters()), "list volumes"):
                self._call(volume.remove, f"remove volume {volume.name}")
        state = self._read_state()
        state.procs = {}
        self.save(state)
        return [s.name for s in SERVICES if s.name in live]

    def status(self) -> list[dict[str, Any]]:
        live = self.containers()
        rows = []
        for svc in (s for s in SERVICES if s.name in live):
            container = live[svc.name]
            url = container.labels.get(URL_LABEL, "")
            running = container.status == "running"
            rows.append({"service": svc.name, "state": container.status,
                         "ready": running and Readiness(svc.name, url + svc.ready_path).probe(),
                         "pid": container.short_id, "url": url, "version": svc.version,
                         "source": self._source(svc.image), "log": f"docker logs {container.name}"})
        return rows

    def logs(self, service: str, *, lines: int, follow: bool) -> Iterator[str]:
        """The last `lines` lines of a container's output, then new ones while `follow`."""
        container = self.containers().get(service)
        if container is None:
            raise UsageError(f"no {service} container in this stack ({self.home})",
                             hint="is the stack up? `scillm-stack status`")
        pending = ""
        for chunk in container.logs(stream=True, follow=follow, tail=lines):
            pending += chunk.decode(errors="replace")
            *complete, pending = pending.split("\n")
            yield from (line + "\n" for line in complete)
        if pending:
            yield pending
