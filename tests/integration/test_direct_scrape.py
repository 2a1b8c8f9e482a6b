"""Without the collector, Prometheus scrapes the demo itself and every check still passes."""

from __future__ import annotations

import json

import pytest

from scillm_stack.check import JOB
from scillm_stack.native import _start_ticks

from .conftest import running_stack
from .test_live_stack import wait_until

pytestmark = pytest.mark.integration


def test_direct_scrape_stack_passes_check(tmp_path):
    with running_stack(tmp_path, "--no-collector") as live:
        rows = json.loads(live.cli("status", "--json").stdout)
        assert sorted(r["service"] for r in rows) == ["demo", "prometheus"]
        pids = [r["pid"] for r in rows]
        assert wait_until(lambda: live.prom.value(f'up{{job="{JOB}"}}') == 1, 30)
        assert {t["labels"]["job"] for t in live.prom.targets()} == {"prometheus", JOB}
        # the recording rules need one evaluation over a window with traffic
        assert wait_until(lambda: live.prom.query("scillm:requests:rps"), 30)
        result = live.cli("check", "--json", check=False)
        failed = [r for r in json.loads(result.stdout) if not r["passed"]]
        assert result.returncode == 0 and not failed, failed
    # gone or a zombie (this sandbox's init does not reap orphans): either way not running
    assert [pid for pid in pids if _start_ticks(pid) is not None] == [], "down left processes running"
