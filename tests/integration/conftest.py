"""Session fixture: a real stack (Prometheus + demo) in its own state dir and ports."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from scillm_stack import ports as portlib
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


def stack_env(home: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCILLM_METRICS", "SCILLM_STACK_"))}
    env.update(SCILLM_STACK_HOME=str(home), SCILLM_STACK_PROMETHEUS_PORT=str(ports["prometheus"]),
               SCILLM_STACK_DEMO_PORT=str(ports["demo"]), SCILLM_STACK_DEMO_CONTROL_PORT=str(ports["demo.control"]))
    return env


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> LiveStack:
    home = tmp_path_factory.mktemp("stack")
    ports = {"prometheus": portlib.free_port(), "demo": portlib.free_port(), "demo.control": portlib.free_port()}
    live = LiveStack(home, stack_env(home, ports), ports, Prometheus(f"http://127.0.0.1:{ports['prometheus']}"),
                     DemoControl(f"http://127.0.0.1:{ports['demo.control']}"))
    try:
        live.cli("up", "--profile", "fast", "--demo-rps", "5")
        yield live
    finally:
        live.cli("down", check=False)
