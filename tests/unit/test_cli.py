"""The CLI as a user meets it: clear errors for bad input, no tracebacks; `load` serves /metrics."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from scillm_stack import contract, ports, rules


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SCILLM_METRICS", "SCILLM_STACK_"))}
    return subprocess.run([sys.executable, "-m", "scillm_stack", *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    text = result.stdout + result.stderr
    assert result.returncode == code, text
    assert "Traceback" not in text, text
    for needle in needles:
        assert needle in " ".join(text.split()), (needle, text)


def test_version_and_help():
    from scillm_stack import __version__

    assert cli("--version").stdout.strip() == f"scillm-stack {__version__}"
    assert "Commands" in cli("-h").stdout
    assert subprocess.run(["scillm-stack", "--version"], capture_output=True, text=True).returncode == 0


@pytest.mark.parametrize(("args", "needle"), [
    (("load", "--rps", "-1"), "--rps"),
    (("load", "--scenario", "nope"), "--scenario"),
    (("load", "--duration", "0"), "--duration"),
    (("up", "--profile", "slow"), "--profile"),
    (("up", "--runtime", "k8s"), "--runtime"),
])
def test_bad_flags_name_themselves(args, needle):
    assert_clean_error(cli(*args), 2, needle)


@pytest.mark.parametrize(("env", "needles"), [
    ({"SCILLM_STACK_PROMETHEUS_PORT": "abc"}, ("SCILLM_STACK_PROMETHEUS_PORT='abc'", "fix:")),
    ({"SCILLM_STACK_DEMO_PORT": "70000"}, ("SCILLM_STACK_DEMO_PORT='70000'",)),
    ({"SCILLM_STACK_ALERT_CAPACITY_RPS": "-3"}, ("SCILLM_STACK_ALERT_CAPACITY_RPS='-3'", "above 0")),
    ({"SCILLM_STACK_ALERT_LATENCY_P95_S": "fast"}, ("SCILLM_STACK_ALERT_LATENCY_P95_S='fast'",)),
])
def test_bad_env_values_name_themselves(tmp_path, env, needles):
    assert_clean_error(cli("up", env={"SCILLM_STACK_HOME": str(tmp_path), **env}), 1, *needles)


def test_bad_upstream_url_and_unknown_service(tmp_path):
    assert_clean_error(cli("load", "--upstream", "ftp://x"), 1, "--upstream='ftp://x'")
    assert_clean_error(cli("logs", "grafanna", env={"SCILLM_STACK_HOME": str(tmp_path)}), 1,
                       "unknown service 'grafanna'", "prometheus")
    assert_clean_error(cli("install", "nginx"), 1, "'nginx' is not an installable component")


def test_missing_binary_says_how_to_install(tmp_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {"SCILLM_STACK_HOME": str(tmp_path / "home"), "SCILLM_STACK_CACHE": str(tmp_path / "cache"),
           "PATH": str(empty_bin)}
    result = subprocess.run([sys.executable, "-m", "scillm_stack", "up", "--runtime", "native", "--no-demo"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert_clean_error(result, 1, "prometheus 3.14.0 not found", "scillm-stack install prometheus")


def test_port_in_use_names_port_and_holder(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = cli("up", "--runtime", "native", "--no-demo", env={"SCILLM_STACK_HOME": str(tmp_path),
                                             "SCILLM_STACK_PROMETHEUS_PORT": str(port)})
    assert_clean_error(result, 1, f"port {port} (prometheus) is in use by pid {os.getpid()}",
                       "SCILLM_STACK_PROMETHEUS_PORT")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_status_and_down_without_a_stack(tmp_path):
    env = {"SCILLM_STACK_HOME": str(tmp_path)}
    assert "no stack here" in cli("status", env=env).stdout
    assert "nothing was running" in cli("down", env=env).stdout


@pytest.mark.promtool
def test_load_chaos_serves_all_five_families_and_promtool_accepts_them(tmp_path):
    promtool = rules.find_promtool()
    assert promtool, "promtool not found: run `scillm-stack install prometheus`"
    port = ports.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCILLM_METRICS", "SCILLM_STACK_"))}
    env.update(SCILLM_METRICS="prom", SCILLM_METRICS_ADDR="127.0.0.1", SCILLM_METRICS_PORT=str(port),
               SCILLM_STACK_HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "scillm_stack", "load", "--scenario", "chaos",
                             "--duration", "8", "--rps", "20"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(6)
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        openmetrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5,
                                   headers={"Accept": "application/openmetrics-text; version=1.0.0"}).text
    finally:
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    for metric in contract.METRICS:
        assert f"# TYPE {metric.name} {metric.type}" in text, metric.name
    assert re.search(r'scillm_requests_total\{[^}]*result="error"[^}]*\} [1-9]', text)
    assert re.search(r'scillm_request_latency_seconds_bucket\{.*\} \d+\.0 # \{trace_id="[0-9a-f]{32}"\}', openmetrics)
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), checked
    # the batch summary goes to stdout and the log file, with the same run_id
    log = (Path(tmp_path) / "logs" / "load.jsonl").read_text()
    run_ids = re.findall(r'"event":"batch_end","run_id":"([0-9a-f]+)"', stdout)
    assert run_ids and run_ids[0] in log and run_ids[0] not in text


def test_load_with_a_bad_metrics_env_warns_once_and_runs(tmp_path):
    result = cli("load", "--duration", "1", "--rps", "5",
                 env={"SCILLM_STACK_HOME": str(tmp_path), "SCILLM_METRICS": "prom", "SCILLM_METRICS_PORT": "abc"})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: scillm telemetry: SCILLM_METRICS_PORT='abc' is not a TCP port; set it to a number "
                        "from 1 to 65535 (default 9464); metrics are off"]
    assert ".py:" not in result.stderr and "Traceback" not in result.stderr
    assert '"event":"batch_end"' in result.stdout


def test_load_uses_the_upstream_it_is_given(tmp_path):
    from scillm_stack.demo.upstream import FakeUpstream

    with FakeUpstream(seed=1) as upstream:
        result = cli("load", "--upstream", upstream.url, "--duration", "1.5", "--rps", "10",
                     env={"SCILLM_STACK_HOME": str(tmp_path)})
        served = sum(sum(counts.values()) for counts in upstream.stats().values())
    assert result.returncode == 0, result.stderr
    assert served >= 10  # every request went to this upstream, none to a fake of its own
