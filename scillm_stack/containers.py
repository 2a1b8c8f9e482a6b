"""How each service of the spec runs as a container: command, mounts, ports and labels.

Shared by the Docker runtime and the rendered docker-compose.yml, so both run the same
containers. Inside a container every service listens on its spec (default) port; the host
side of each port is chosen at `up` (or is the default in the compose file).
"""

from __future__ import annotations

from scillm_stack.spec import Service

STACK_LABEL = "scillm-stack.stack"
SERVICE_LABEL = "scillm-stack.service"
HOME_LABEL = "scillm-stack.home"
URL_LABEL = "scillm-stack.url"
# Mount points inside the containers. /prometheus is the official image's data dir (owned
# by nobody there; a fresh named volume takes over that ownership, so either image works).
CONFIG_MOUNT = "/etc/{service}"
DATA_MOUNT = "/prometheus"
LOGS_MOUNT = "/logs"
# Container-only arguments: inside its own network namespace the demo's control API must
# listen on every interface to be reachable through the published port.
CONTAINER_ARGS: dict[str, tuple[str, ...]] = {"demo": ("--control-addr=0.0.0.0",)}


def mentions(svc: Service, placeholder: str) -> bool:
    """Whether the service's args use `{placeholder}` (so it needs that mount)."""
    return any(f"{{{placeholder}}}" in arg for arg in svc.args)


def container_command(svc: Service, *, demo_scenario: str, demo_rps: float) -> list[str]:
    """The service's args as they run in its container: spec ports, fixed mount points."""
    values = {"listen": f"0.0.0.0:{svc.port}", "port": str(svc.port), "config": CONFIG_MOUNT.format(service=svc.name),
              "data": DATA_MOUNT, "logs": LOGS_MOUNT, "demo_scenario": demo_scenario, "demo_rps": f"{demo_rps:g}",
              **{f"{extra}_port": str(port) for extra, port in svc.extra_ports.items()}}
    return [arg.format(**values) for arg in svc.args] + list(CONTAINER_ARGS.get(svc.name, ()))


def published_ports(svc: Service, ports: dict[str, int]) -> dict[str, int]:
    """Container port ("9090/tcp") -> host port, for the service's port and its extra ports."""
    return {f"{svc.port}/tcp": ports[svc.name],
            **{f"{port}/tcp": ports[f"{svc.name}.{extra}"] for extra, port in svc.extra_ports.items()}}
