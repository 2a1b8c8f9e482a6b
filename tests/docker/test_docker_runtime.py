"""What only the Docker runtime promises: loopback ports, read-only configs, labels, clean teardown."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import pytest

from scillm_stack import spec
from scillm_stack.containers import HOME_LABEL, SERVICE_LABEL, STACK_LABEL
from scillm_stack.docker_runtime import stack_id
from scillm_stack.testing import free_ports, stack_env

from .conftest import labelled

pytestmark = pytest.mark.docker


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scillm_stack", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_every_service_runs_in_a_labelled_container(engine, stack):
    found = labelled(engine, stack.home)
    ident = stack_id(stack.home)
    assert {c.labels[SERVICE_LABEL]: c.name for c in found["containers"]} == {
        s.name: f"scillm-{ident}-{s.name}" for s in spec.SERVICES}
    images = {c.labels[SERVICE_LABEL]: c.attrs["Config"]["Image"] for c in found["containers"]}
    assert images == {s.name: s.image for s in spec.SERVICES}
    assert [n.name for n in found["networks"]] == [f"scillm-{ident}"]
    assert sorted(v.name for v in found["volumes"]) == [f"scillm-{ident}-collector-data",
                                                          f"scillm-{ident}-prometheus-data"]
    for resource in found["containers"] + found["networks"] + found["volumes"]:
        labels = resource.attrs.get("Labels") or resource.attrs.get("Config", {}).get("Labels")
        assert labels[STACK_LABEL] == ident and labels[HOME_LABEL] == str(stack.home), resource.name


def test_published_ports_bind_loopback_only(engine, stack):
    for container in labelled(engine, stack.home)["containers"]:
        bindings = container.attrs["HostConfig"]["PortBindings"]
        published = {port: [(b["HostIp"], int(b["HostPort"])) for b in hosts] for port, hosts in bindings.items()}
        service = spec.service(container.labels[SERVICE_LABEL])
        expected = {f"{service.port}/tcp": [("127.0.0.1", stack.ports[service.name])]}
        expected.update({f"{port}/tcp": [("127.0.0.1", stack.ports[f"{service.name}.{extra}"])]
                         for extra, port in service.extra_ports.items()})
        assert published == expected, container.name


def test_configs_are_mounted_read_only_and_data_lives_in_volumes(engine, stack):
    for container in labelled(engine, stack.home)["containers"]:
        mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
        name = container.labels[SERVICE_LABEL]
        if name == "demo":
            assert set(mounts) == {"/logs"} and mounts["/logs"]["RW"]
            assert mounts["/logs"]["Source"] == str(stack.home / "logs")
            continue
        config = mounts[f"/etc/{name}"]
        assert config["Type"] == "bind" and config["RW"] is False
        assert config["Source"] == str(stack.home / "config" / name)
        data = mounts["/prometheus"]
        assert data["Type"] == "volume" and data["Name"] == f"scillm-{stack_id(stack.home)}-{name}-data"


def test_status_and_logs_speak_of_containers(engine, stack):
    rows = {r["service"]: r for r in json.loads(stack.cli("status", "--json").stdout)}
    for container in labelled(engine, stack.home)["containers"]:
        row = rows[container.labels[SERVICE_LABEL]]
        assert row["pid"] == container.short_id and row["log"] == f"docker logs {container.name}"
        assert row["source"] == "image, built locally"
    assert "Server is ready to receive web requests" in stack.cli("logs", "prometheus", "-n", "200").stdout


def test_runtime_auto_picks_docker_and_down_removes_only_this_stack(engine, stack, tmp_path):
    env = stack_env(tmp_path, free_ports(), runtime="auto")
    other_before = {c.id for c in labelled(engine, stack.home)["containers"]}
    try:
        up = cli(env, "up", "--profile", "fast", "--no-demo", "--no-collector")
        assert up.returncode == 0, up.stderr
        assert "runtime: docker (auto: a Docker daemon answers)" in up.stderr
        assert [c.labels[SERVICE_LABEL] for c in labelled(engine, tmp_path)["containers"]] == ["prometheus"]
        assert cli(env, "down").returncode == 0
        left = labelled(engine, tmp_path)
        assert left["containers"] == [] and left["networks"] == []
        assert [v.name for v in left["volumes"]] == [f"scillm-{stack_id(tmp_path)}-prometheus-data"]
    finally:
        down = cli(env, "down", "--volumes")
    assert down.returncode == 0, down.stderr
    assert labelled(engine, tmp_path) == {"containers": [], "networks": [], "volumes": []}
    assert {c.id for c in labelled(engine, stack.home)["containers"] if c.status == "running"} == other_before


def test_a_taken_port_fails_up_with_a_fix_and_starts_nothing(engine, tmp_path):
    ports = free_ports()
    env = stack_env(tmp_path, ports, runtime="docker")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["demo"]))
        holder.listen()
        up = cli(env, "up", "--profile", "fast")
    assert up.returncode == 1
    assert f"port {ports['demo']} (demo) is in use" in up.stderr and "SCILLM_STACK_DEMO_PORT" in up.stderr
    assert "Traceback" not in up.stderr
    assert labelled(engine, tmp_path)["containers"] == []


def test_an_interrupted_up_leaves_nothing_running(engine, tmp_path):
    env = stack_env(tmp_path, free_ports(), runtime="docker")
    up = subprocess.Popen([sys.executable, "-m", "scillm_stack", "up", "--profile", "fast"], env=env,
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = []
    try:
        for line in up.stderr:  # every container is started before the wait begins
            seen.append(line)
            if "started demo" in line:
                up.send_signal(signal.SIGINT)
                break
        rest = up.communicate(timeout=60)[1]
    finally:
        if up.poll() is None:
            up.kill()
    output = "".join(seen) + rest
    assert up.returncode != 0 and "ready in" not in output, output
    assert [c.name for c in labelled(engine, tmp_path)["containers"] if c.status == "running"] == []
    down = cli(env, "down", "--volumes")
    assert down.returncode == 0, down.stderr
    assert labelled(engine, tmp_path) == {"containers": [], "networks": [], "volumes": []}
    assert json.loads(cli(env, "status", "--json").stdout) == []


def test_one_state_dir_can_switch_runtimes_between_ups(engine, tmp_path):
    env = stack_env(tmp_path, free_ports(), runtime="docker")
    args = ("up", "--profile", "fast", "--no-demo", "--no-collector")
    try:
        assert cli(env, *args).returncode == 0
        assert cli(env, *args, "--runtime", "native").returncode == 1  # the docker stack still runs
        assert cli(env, "down", "--volumes").returncode == 0
        native = cli(env, *args, "--runtime", "native")
        assert native.returncode == 0 and "runtime: native" in native.stderr, native.stderr
        assert json.loads((tmp_path / "state.json").read_text())["runtime"] == "native"
        assert "stopped: prometheus" in cli(env, "down").stdout
    finally:
        cli(env, "down", "--volumes")
    assert labelled(engine, tmp_path) == {"containers": [], "networks": [], "volumes": []}
