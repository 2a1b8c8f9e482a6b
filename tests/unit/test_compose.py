"""docker-compose.yml is rendered from the spec, and the committed file is that render."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from scillm_stack import compose, spec

ROOT = Path(__file__).resolve().parents[2]


def test_committed_compose_file_is_the_render():
    committed = (ROOT / compose.COMPOSE_FILE).read_text()
    assert committed == compose.render_compose(), "run `scillm-stack compose > docker-compose.yml`"


def test_compose_runs_the_spec_on_loopback_with_read_only_configs():
    services = yaml.safe_load(compose.render_compose())["services"]
    assert list(services) == [s.name for s in spec.SERVICES]
    for svc in spec.SERVICES:
        entry = services[svc.name]
        assert entry["image"] == svc.image
        ports = [svc.port, *svc.extra_ports.values()]
        assert entry["ports"] == [f"127.0.0.1:{port}:{port}" for port in ports]
        configs = [v for v in entry["volumes"] if "/config/" in v]
        assert all(v.endswith(":ro") for v in configs)
    assert services["demo"]["pull_policy"] == "never"
    assert "--control-addr=0.0.0.0" in services["demo"]["command"]
    assert services["collector"]["depends_on"] == ["prometheus"]


def test_render_ignores_port_overrides(monkeypatch):
    monkeypatch.setenv("SCILLM_STACK_PROMETHEUS_PORT", "19999")
    assert "19999" not in compose.render_compose()


def test_compose_write_renders_the_configs_it_mounts(tmp_path):
    result = subprocess.run([sys.executable, "-m", "scillm_stack", "compose", "--write"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "docker-compose.yml").read_text() == compose.render_compose()
    document = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
    for entry in document["services"].values():
        for volume in entry["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (tmp_path / source).is_dir(), source
    collector = yaml.safe_load((tmp_path / ".scillm-stack/config/collector/collector.yml").read_text())
    assert collector["scrape_configs"][0]["static_configs"][0]["targets"] == [f"demo:{spec.DEMO.port}"]
    assert collector["remote_write"][0]["url"] == f"http://prometheus:{spec.PROMETHEUS.port}/api/v1/write"
    assert (tmp_path / ".scillm-stack/config/prometheus/rules").is_dir()
