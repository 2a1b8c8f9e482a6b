"""The Docker suite: a real engine, images built locally, one stack on the Docker runtime.

No engine is a failure, never a skip: `.ci/run` (scripts/setup.sh) starts dockerd.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any, Iterator

import pytest

from scillm_stack.containers import STACK_LABEL
from scillm_stack.docker_runtime import connect, stack_id
from scillm_stack.errors import DockerUnavailableError
from scillm_stack.testing import LiveStack, running_stack


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """A Docker client, once `scillm-stack images build` has made the stack's images."""
    try:
        client = connect()
    except DockerUnavailableError as exc:
        pytest.fail(f"the Docker suite needs a running engine: {exc}", pytrace=False)
    built = subprocess.run([sys.executable, "-m", "scillm_stack", "images", "build"],
                           capture_output=True, text=True, timeout=900)
    if built.returncode != 0:
        pytest.fail(f"scillm-stack images build failed:\n{built.stdout}\n{built.stderr}", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="package")
def stack(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """The stack the live suite runs against, on the Docker runtime; torn down after this folder."""
    with running_stack(tmp_path_factory.mktemp("docker-stack"), "--demo-rps", "5", runtime="docker") as live:
        yield live


def labelled(engine: Any, live_home: Any) -> dict[str, list[Any]]:
    """Every container, network and volume that carries this stack's label."""
    filters = {"label": f"{STACK_LABEL}={stack_id(live_home)}"}
    return {"containers": engine.containers.list(all=True, filters=filters),
            "networks": engine.networks.list(filters=filters),
            "volumes": engine.volumes.list(filters=filters)}
