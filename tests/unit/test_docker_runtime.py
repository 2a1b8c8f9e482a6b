"""The Docker runtime without an engine: names, labels, commands, and errors turned into ours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import docker.errors
import pytest

from scillm_stack import spec
from scillm_stack.containers import container_command, published_ports
from scillm_stack.docker_runtime import DockerRuntime, docker_available, stack_id
from scillm_stack.errors import ComponentError, DockerUnavailableError
from scillm_stack.render import Addresses


def test_stack_id_depends_on_the_state_dir_only(tmp_path):
    assert stack_id(tmp_path / "a") == stack_id(tmp_path / "a") != stack_id(tmp_path / "b")
    runtime = DockerRuntime(tmp_path / "a", client=object())  # type: ignore[arg-type]
    assert runtime.container_name("demo") == f"scillm-{stack_id(tmp_path / 'a')}-demo"
    assert runtime.labels()["scillm-stack.stack"] == stack_id(tmp_path / "a")


def test_containers_use_spec_ports_and_fixed_mount_points():
    prometheus = container_command(spec.PROMETHEUS, demo_scenario="steady", demo_rps=5.0)
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus
    assert "--web.listen-address=0.0.0.0:9090" in prometheus and "--storage.tsdb.path=/prometheus" in prometheus
    demo = container_command(spec.DEMO, demo_scenario="chaos", demo_rps=2.5)
    assert demo[0] == "demo" and "--scenario=chaos" in demo and "--rps=2.5" in demo
    assert "--control-port=9465" in demo and "--control-addr=0.0.0.0" in demo
    assert published_ports(spec.DEMO, {"demo": 1, "demo.control": 2}) == {"9464/tcp": 1, "9465/tcp": 2}
    assert Addresses.docker() == Addresses(prometheus="prometheus:9090", demo="demo:9464")


def test_no_engine_is_an_error_with_a_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    assert docker_available() is False
    with pytest.raises(DockerUnavailableError) as caught:
        DockerRuntime(tmp_path).status()
    assert "--runtime native" in str(caught.value)
    result = subprocess.run([sys.executable, "-m", "scillm_stack", "images", "build"], capture_output=True,
                            text=True, timeout=60, env={"DOCKER_HOST": f"unix://{tmp_path}/no.sock",
                                                        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no Docker engine answers" in result.stderr


class _Images:
    def get(self, name: str) -> None:
        raise docker.errors.ImageNotFound(f"no such image: {name}")

    def pull(self, name: str) -> None:
        raise docker.errors.APIError("pull access denied", explanation="registry-1.docker.io: no such host")


class _Client:
    images = _Images()


def test_an_image_that_cannot_be_pulled_says_build_it(tmp_path: Path):
    runtime = DockerRuntime(tmp_path, client=_Client())  # type: ignore[arg-type]
    with pytest.raises(ComponentError) as caught:
        runtime._ensure_images([spec.PROMETHEUS], on_event=lambda msg: None)
    message = str(caught.value)
    assert "prom/prometheus:v3.14.0 is not here and cannot be pulled" in message
    assert "scillm-stack images build" in message
