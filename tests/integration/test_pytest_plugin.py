"""The pytest plugin users' CI loads: its `scillm_stack` fixture brings up a real stack."""

from __future__ import annotations

import pytest

from scillm_stack.paths import cache_home

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration
CACHE = cache_home()  # read before pytester swaps HOME for the run

USER_TEST = '''
import time

def test_users_alert_fires(scillm_stack):
    scillm_stack.demo.run("capacity-429", rps=10, duration_s=60)
    deadline = time.monotonic() + 60
    while scillm_stack.prom.alert_state("SciLLMHighCapacityRetries") != "firing":
        assert time.monotonic() < deadline, "alert never fired"
        time.sleep(0.5)

def test_same_stack_for_the_session(scillm_stack):
    assert scillm_stack.prom.value('count(scillm_retries_total)') == 4
'''


def test_plugin_fixture_runs_a_users_live_test(pytester, monkeypatch):
    # pytester gives the run a HOME of its own; keep the component cache this machine has.
    monkeypatch.setenv("SCILLM_STACK_CACHE", str(CACHE))
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess("--scillm-runtime", "native", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_plugin_options_are_registered(pytester):
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--scillm-runtime*", "*--scillm-profile*"])
