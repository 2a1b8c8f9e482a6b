"""`docker-compose.yml` rendered from the stack spec, the same containers the Docker runtime runs.

The file is deterministic (default ports, default demo load, no environment read) and
committed at the top of the repository; a unit test keeps it identical to `render_compose()`.
It mounts configs rendered by `scillm-stack compose --write` into `./.scillm-stack/config`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from scillm_stack.containers import (CONFIG_MOUNT, DATA_MOUNT, LOGS_MOUNT, SERVICE_LABEL, STACK_LABEL,
                                     container_command, mentions, published_ports)
from scillm_stack.native import StackPlan
from scillm_stack.render import Addresses, render_stack
from scillm_stack.spec import SERVICES, Service, Thresholds, timing

COMPOSE_FILE = "docker-compose.yml"
LOCAL_DIR = ".scillm-stack"  # next to the compose file: rendered configs and the demo's logs
PROJECT = "scillm-stack"
HEADER = f"""\
# Rendered by `scillm-stack compose` from scillm_stack/spec.py; do not edit by hand.
# `scillm-stack compose --write` writes this file and renders the configs it mounts into
# ./{LOCAL_DIR}/config (profile fast; --profile production for production timing).
# Images: `scillm-stack images build` builds both locally; the demo image is never pulled.
"""


def default_ports() -> dict[str, int]:
    """The spec's default ports, ignoring any SCILLM_STACK_*_PORT override."""
    ports = {}
    for svc in SERVICES:
        ports[svc.name] = svc.port
        ports.update({f"{svc.name}.{extra}": port for extra, port in svc.extra_ports.items()})
    return ports


def _service(svc: Service, defaults: StackPlan) -> dict[str, object]:
    entry: dict[str, object] = {"image": svc.image}
    if svc.binary:
        entry["entrypoint"] = [f"/bin/{svc.binary}"]
    else:
        entry["pull_policy"] = "never"  # our own image: `scillm-stack images build`
    entry["command"] = container_command(svc, demo_scenario=defaults.demo_scenario, demo_rps=defaults.demo_rps)
    entry["ports"] = [f"127.0.0.1:{host}:{port.split('/')[0]}"
                      for port, host in published_ports(svc, defaults.ports).items()]
    volumes = []
    if mentions(svc, "config"):
        volumes.append(f"./{LOCAL_DIR}/config/{svc.name}:{CONFIG_MOUNT.format(service=svc.name)}:ro")
    if mentions(svc, "data"):
        volumes.append(f"{svc.name}-data:{DATA_MOUNT}")
    if mentions(svc, "logs"):
        volumes.append(f"./{LOCAL_DIR}/logs:{LOGS_MOUNT}")
    entry["volumes"] = volumes
    if svc.depends_on:
        entry["depends_on"] = list(svc.depends_on)
    entry["labels"] = {STACK_LABEL: PROJECT, SERVICE_LABEL: svc.name}
    return entry


def render_compose() -> str:
    """The compose file text for the default ports and demo load."""
    defaults = StackPlan(services=tuple(s.name for s in SERVICES), ports=default_ports(),
                         timing=timing("fast"), thresholds=Thresholds())
    document = {
        "name": PROJECT,
        "services": {svc.name: _service(svc, defaults) for svc in SERVICES},
        "networks": {"default": {"labels": {STACK_LABEL: PROJECT}}},
        "volumes": {f"{svc.name}-data": {"labels": {STACK_LABEL: PROJECT, SERVICE_LABEL: svc.name}}
                    for svc in SERVICES if mentions(svc, "data")},
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=120)


def write(directory: Path, *, profile: str = "fast", thresholds: Thresholds | None = None) -> Path:
    """Write the compose file into `directory` and render the configs it mounts; return its path."""
    local = directory / LOCAL_DIR
    render_stack(local / "config", timing=timing(profile), thresholds=thresholds or Thresholds(),
                 addresses=Addresses.docker(), collector=True)
    (local / "logs").mkdir(parents=True, exist_ok=True)
    path = directory / COMPOSE_FILE
    path.write_text(render_compose())
    return path
