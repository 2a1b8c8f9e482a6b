"""Where a stack keeps its state and where built components are cached."""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "SCILLM_STACK_HOME"
ENV_CACHE = "SCILLM_STACK_CACHE"


def state_home() -> Path:
    """The state dir of this stack: $SCILLM_STACK_HOME, else a per-user default."""
    explicit = os.environ.get(ENV_HOME, "").strip()
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME", "").strip() or str(Path.home() / ".local" / "state")
    return Path(base) / "scillm-stack"


def cache_home() -> Path:
    """The component cache: $SCILLM_STACK_CACHE, else ~/.cache/scillm-stack."""
    explicit = os.environ.get(ENV_CACHE, "").strip()
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "scillm-stack"
