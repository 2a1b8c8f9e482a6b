"""Find a component's executable: the install cache first, then PATH when its version fits."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from scillm_stack.errors import ComponentError
from scillm_stack.paths import cache_home
from scillm_stack.spec import Service

_VERSION = re.compile(r"version\s+v?(\d+\.\d+\.\d+)")


@dataclass(frozen=True)
class Located:
    path: Path
    version: str
    source: str  # "cache" or "PATH"


def version_of(path: Path | str) -> str | None:
    """The x.y.z a binary reports for `--version`, if it says."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(out.stdout + out.stderr)
    return match.group(1) if match else None


def _as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def cached_path(service: Service, binary: str | None = None) -> Path:
    """Where `scillm-stack install` puts this component's binary."""
    return cache_home() / service.component / service.version / (binary or service.binary or service.name)


def locate(service: Service, binary: str | None = None) -> Located | None:
    """The pinned version from the cache, else a fitting one on PATH, else None."""
    name = binary or service.binary
    if name is None:
        return None
    cached = cached_path(service, name)
    if cached.is_file():
        return Located(cached, service.version, "cache")
    found = shutil.which(name)
    if found:
        version = version_of(found)
        if version and (version == service.version or (
                service.min_version and _as_tuple(version) >= _as_tuple(service.min_version))):
            return Located(Path(found), version, "PATH")
    return None


def require(service: Service, binary: str | None = None) -> Located:
    """Like locate(), but a missing binary is a ComponentError saying how to install it."""
    located = locate(service, binary)
    if located is None:
        name = binary or service.binary
        raise ComponentError(
            f"{name} {service.version} not found (looked in {cached_path(service, name).parent} and on PATH)",
            hint=f"run `scillm-stack install {service.component}`"
                 + (f", or `apt-get install {service.component}` for a version >= {service.min_version}"
                    if service.min_version else ""),
        )
    return located
