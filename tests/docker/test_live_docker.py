"""The native runtime's live suite, run unchanged against a stack on the Docker runtime.

The tests are imported from tests/integration; here they get this folder's `stack` fixture
(containers, images built locally), so both runtimes answer the same PromQL checks.
"""

from __future__ import annotations

import pytest

from tests.integration.test_live_stack import *  # noqa: F401,F403

pytestmark = pytest.mark.docker
