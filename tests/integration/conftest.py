"""Session fixture: a real stack (Prometheus + demo) in its own state dir and ports."""

from __future__ import annotations

from typing import Iterator

import pytest

from scillm_stack.testing import LiveStack, running_stack  # noqa: F401  (test_direct_scrape imports running_stack from here)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with running_stack(tmp_path_factory.mktemp("stack"), "--demo-rps", "5") as live:
        yield live
