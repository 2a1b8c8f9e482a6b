"""The runtime seam: one Protocol, a native and a Docker implementation, chosen by name.

`up` picks by `--runtime` (`auto`: Docker when a daemon answers, else native); `down`,
`status` and `logs` act on whatever runtime the state dir says the stack was started with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from scillm_stack.errors import UsageError
from scillm_stack.native import STATE_FILE, NativeRuntime, StackPlan, State

RUNTIMES = ("native", "docker", "auto")


class Runtime(Protocol):
    name: str
    home: Path

    def up(self, plan: StackPlan, *, on_event: Callable[[str], None] = ...) -> dict[str, Any]: ...

    def down(self, *, volumes: bool = False) -> list[str]: ...

    def status(self) -> list[dict[str, Any]]: ...

    def logs(self, service: str, *, lines: int, follow: bool) -> Iterator[str]: ...

    def load(self) -> State: ...


def _make(name: str, home: Path) -> Runtime:
    if name == "native":
        return NativeRuntime(home)
    if name == "docker":
        from scillm_stack.docker_runtime import DockerRuntime

        return DockerRuntime(home)
    raise UsageError(f"unknown runtime {name!r}", hint=f"choose one of: {', '.join(RUNTIMES)}")


def for_up(name: str, home: Path) -> tuple[Runtime, str]:
    """The runtime to start a stack with, and why it was chosen."""
    if name != "auto":
        return _make(name, home), f"--runtime {name}"
    from scillm_stack.docker_runtime import docker_available

    if docker_available():
        return _make("docker", home), "auto: a Docker daemon answers"
    return _make("native", home), "auto: no Docker daemon answers"


def current(home: Path) -> Runtime:
    """The runtime the stack in `home` was started with (native when none was)."""
    path = home / STATE_FILE
    name = json.loads(path.read_text()).get("runtime", "native") if path.is_file() else "native"
    return _make(name, home)
