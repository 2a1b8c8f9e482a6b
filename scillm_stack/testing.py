"""A real stack for integration tests: `up` on free ports in its own state dir, always `down`.

Used by this project's live suites and, through the pytest plugin, by users' CI:

    with running_stack(tmp_path, runtime="native") as live:
        live.demo.run("capacity-429", rps=10, duration_s=60)
        assert live.prom.value('sum(rate(scillm_retries_total{reason="429_capacity"}[20s]))') > 0
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from scillm_stack import ports as portlib, spec
from scillm_stack.demo.control import DemoControl
from scillm_stack.promql import Prometheus


@dataclass
class LiveStack:
    """A running stack: its state dir, env, ports, and clients of Prometheus and the demo."""

    home: Path
    env: dict[str, str]
    ports: dict[str, int]
    prom: Prometheus
    demo: DemoControl

    def cli(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run `scillm-stack ARGS` as a user would, against this stack."""
        result = subprocess.run([sys.executable, "-m", "scillm_stack", *args], env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"scillm-stack {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result


KEPT = ("SCILLM_STACK_CACHE", "SCILLM_STACK_RELEASE_MIRROR")  # where binaries come from, not which stack


def stack_env(home: Path, ports: dict[str, int], runtime: str = "native") -> dict[str, str]:
    """This process's env, minus SCILLM_* stack settings, plus the stack's home, runtime and ports."""
    env = {k: v for k, v in os.environ.items()
           if k in KEPT or not k.startswith(("SCILLM_METRICS", "SCILLM_STACK_"))}
    env["SCILLM_STACK_HOME"] = str(home)
    env["SCILLM_STACK_RUNTIME"] = runtime
    for key, port in ports.items():
        env[f"SCILLM_STACK_{key.replace('.', '_').upper()}_PORT"] = str(port)
    return env


def free_ports() -> dict[str, int]:
    """A free 127.0.0.1 port for every port of the spec."""
    return {key: portlib.free_port() for key in spec.ports()}


@contextlib.contextmanager
def running_stack(home: Path, *up_args: str, runtime: str = "native", profile: str = "fast") -> Iterator[LiveStack]:
    """`up` a stack on free ports in `home` with `runtime`, yield it, always `down --volumes` it."""
    ports = free_ports()
    live = LiveStack(home, stack_env(home, ports, runtime), ports,
                     Prometheus(f"http://127.0.0.1:{ports['prometheus']}"),
                     DemoControl(f"http://127.0.0.1:{ports['demo.control']}"))
    try:
        live.cli("up", "--profile", profile, *up_args)
        yield live
    finally:
        live.cli("down", "--volumes", check=False)
