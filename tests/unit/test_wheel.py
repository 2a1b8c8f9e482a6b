"""An installed wheel works like a checkout: `stack/` and `dashboards/` ship inside it."""

from __future__ import annotations

import subprocess
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = """
from pathlib import Path
import scillm_stack
assert "/site/" in scillm_stack.__file__, scillm_stack.__file__
from scillm_stack import dashboard, resources, rules, spec
from scillm_stack.compose import render_compose
from scillm_stack.render import Addresses, render_stack
root = Path(scillm_stack.__file__).parent
assert resources.stack_dir() == root / "_data" / "stack", resources.stack_dir()
assert dashboard.problems(dashboard.load()) == []
out = Path(__import__("tempfile").mkdtemp())
render_stack(out, timing=spec.timing("production"), thresholds=spec.Thresholds(),
             addresses=Addresses.native(spec.ports()), collector=True)
assert "SciLLMHighCapacityRetries" in (out / "prometheus" / "rules" / "scillm.rules.yml").read_text()
assert "remote_write" in (out / "collector" / "collector.yml").read_text()
assert "prom/prometheus" in render_compose()
print("wheel ok")
"""


def test_installed_wheel_reads_its_own_data(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(REPO)],
                   check=True, capture_output=True)
    wheel = next(wheel_dir.glob("scillm_stack-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    # The wheel's copy comes first on the path (dependencies from this environment), and the
    # probe runs outside the checkout, so nothing is found through the source tree.
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "wheel ok"
