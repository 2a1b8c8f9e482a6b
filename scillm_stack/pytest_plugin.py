"""pytest plugin: a session-scoped live stack for users' integration tests.

Installed with the package (entry point `pytest11`). Tests ask for the `scillm_stack`
fixture; the stack starts once per session on free ports in a temporary state dir and is
always torn down. Options: `--scillm-runtime native|docker|auto` and
`--scillm-profile fast|production` (or the ini keys `scillm_runtime`, `scillm_profile`).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from scillm_stack.testing import LiveStack, running_stack


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("scillm-stack")
    group.addoption("--scillm-runtime", choices=("native", "docker", "auto"), default=None,
                    help="runtime of the scillm_stack fixture (default: ini scillm_runtime, else native)")
    group.addoption("--scillm-profile", choices=("fast", "production"), default=None,
                    help="timing profile of the scillm_stack fixture (default: ini scillm_profile, else fast)")
    parser.addini("scillm_runtime", "runtime of the scillm_stack fixture", default="native")
    parser.addini("scillm_profile", "timing profile of the scillm_stack fixture", default="fast")


@pytest.fixture(scope="session")
def scillm_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """A running scillm-stack (Prometheus, collector, demo) for the whole test session."""
    config = request.config
    runtime = config.getoption("--scillm-runtime") or config.getini("scillm_runtime")
    profile = config.getoption("--scillm-profile") or config.getini("scillm_profile")
    with running_stack(tmp_path_factory.mktemp("scillm-stack"), runtime=runtime, profile=profile) as live:
        yield live
