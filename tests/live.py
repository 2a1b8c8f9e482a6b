"""A real stack for the live suites: `up` on free ports in its own state dir, always `down`."""

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


def stack_env(home: Path, ports: dict[str, int], runtime: str = "native") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCILLM_METRICS", "SCILLM_STACK_"))}
    env["SCILLM_STACK_HOME"] = str(home)
    env["SCILLM_STACK_RUNTIME"] = runtime
    for key, port in ports.items():
        env[f"SCILLM_STACK_{key.replace('.', '_').upper()}_PORT"] = str(port)
    return env


def free_ports() -> dict[str, int]:
    return {key: portlib.free_port() for key in spec.ports()}


@contextlib.contextmanager
def running_stack(home: Path, *up_args: str, runtime: str = "native") -> Iterator[LiveStack]:
    """`up` a stack on free ports in `home` with `runtime`, yield it, always `down --volumes` it."""
    ports = free_ports()
    live = LiveStack(home, stack_env(home, ports, runtime), ports,
                     Prometheus(f"http://127.0.0.1:{ports['prometheus']}"),
                     DemoControl(f"http://127.0.0.1:{ports['demo.control']}"))
    try:
        live.cli("up", "--profile", "fast", *up_args)
        yield live
    finally:
        live.cli("down", "--volumes", check=False)
