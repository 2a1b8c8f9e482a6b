"""A root filesystem for `FROM scratch`, assembled from the Python interpreter running us.

It holds the interpreter, its standard library (lib-dynload included, tests and GUI left
out), the site-packages of scillm-stack's runtime dependencies, scillm-stack itself with its
`stack/` data, every shared library `ldd` names for those binaries, the dynamic loader, and
/tmp. The layout is the same whatever the host's: everything under /usr/local, libraries
in /usr/local/lib, and byte code compiled ahead (unchecked-hash .pyc, so file times do not
matter and the container never writes any).
"""

from __future__ import annotations

import compileall
import hashlib
import os
import py_compile
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import scillm_stack
from scillm_stack.errors import InstallError
from scillm_stack.resources import stack_dir

PREFIX = "/usr/local"
PACKAGE = "scillm-stack"
# Used when scillm-stack runs from a checkout without being installed.
FALLBACK_REQUIREMENTS = ("prometheus-client", "typer", "rich", "requests", "PyYAML", "docker")
STDLIB_SKIP = ("site-packages", "dist-packages", "lib-dynload", "test", "idlelib", "tkinter",
               "turtledemo", "ensurepip", "lib2to3", "__pycache__", "config-")
DYNLOAD_SKIP = ("_tkinter", "_test", "_ctypes_test", "_xxtestfuzz", "xxlimited")
_LDD = re.compile(r"^\s*(?:(\S+) => )?(/\S+) \(0x[0-9a-f]+\)$")


@dataclass(frozen=True)
class Interpreter:
    """Where this Python's parts live on the host."""

    binary: Path
    stdlib: Path
    dynload: Path
    version: str  # "3.11"

    @property
    def lib(self) -> str:
        """The stdlib dir inside the image."""
        return f"{PREFIX}/lib/python{self.version}"

    @property
    def site_packages(self) -> str:
        return f"{self.lib}/site-packages"


def this_interpreter() -> Interpreter:
    """The interpreter running us (the base one when inside a virtualenv)."""
    binary = Path(getattr(sys, "_base_executable", "") or sys.executable).resolve()
    stdlib = Path(os.__file__).resolve().parent
    dynload = next((Path(p) for p in sys.path if p.endswith("lib-dynload") and Path(p).is_dir()),
                   stdlib / "lib-dynload")
    return Interpreter(binary, stdlib, dynload, f"{sys.version_info[0]}.{sys.version_info[1]}")


def _applies(marker: str) -> bool:
    """Whether a requirement's environment marker holds here (never for an extra)."""
    try:
        from packaging.markers import Marker
    except ImportError:  # packaging is not a dependency; without it keep all but extras
        return "extra" not in marker
    return Marker(marker).evaluate({"extra": ""})


def _requirement_names(dist_name: str) -> list[str]:
    try:
        requires = metadata.requires(dist_name)
    except metadata.PackageNotFoundError:
        requires = list(FALLBACK_REQUIREMENTS) if dist_name == PACKAGE else []
    names = []
    for req in requires or []:
        spec, _, marker = req.partition(";")
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec.strip())
        if match and (not marker.strip() or _applies(marker.strip())):
            names.append(match.group(0))
    return names


def runtime_distributions() -> list[metadata.Distribution]:
    """scillm-stack's installed runtime dependencies, transitively (not scillm-stack itself)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = _requirement_names(PACKAGE)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        try:
            seen[key] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform or Python version
        todo.extend(_requirement_names(name))
    return [seen[key] for key in sorted(seen)]


def inputs_digest(interp: Interpreter) -> str:
    """A digest of everything the root filesystem is made from, to tell a stale image."""
    digest = hashlib.sha256(f"{sys.version}|{interp.binary}|{interp.stdlib}\n".encode())
    for dist in runtime_distributions():
        digest.update(f"{dist.metadata['Name']}=={dist.version}\n".encode())
    for root in (Path(scillm_stack.__file__).parent, stack_dir()):
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(f"{path.relative_to(root)}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _skip_stdlib(directory: str, names: list[str]) -> set[str]:
    """Directories the demo never imports (tests, GUI, installers) and old byte code."""
    return {n for n in names if n.startswith(STDLIB_SKIP) and (Path(directory) / n).is_dir()}


def _copy_dists(dest: Path) -> list[Path]:
    """Copy each runtime dependency's installed files; return the shared objects among them."""
    objects = []
    for dist in runtime_distributions():
        for file in dist.files or []:
            if file.parts[0] == ".." or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue  # console scripts outside site-packages; byte code is rebuilt
            source = Path(dist.locate_file(file))
            if not source.is_file():
                continue
            target = dest / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            if ".so" in target.suffixes:
                objects.append(target)
    return objects


def _copy_package(dest: Path) -> None:
    """scillm_stack itself, with `stack/` where an installed wheel keeps it (`_data/stack`)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_data")
    shutil.copytree(Path(scillm_stack.__file__).parent, dest / "scillm_stack", ignore=ignore)
    shutil.copytree(stack_dir(), dest / "scillm_stack" / "_data" / "stack", ignore=ignore)


def shared_libraries(binaries: list[Path]) -> tuple[dict[str, Path], Path | None]:
    """Library name -> host file for everything `ldd` names, and the dynamic loader."""
    libraries: dict[str, Path] = {}
    loader: Path | None = None
    for binary in binaries:
        try:
            out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise InstallError(f"cannot run ldd on {binary}: {exc}",
                               hint="install it (`apt-get install libc-bin`)") from None
        for line in out.stdout.splitlines():
            match = _LDD.match(line)
            if not match:
                continue  # linux-vdso, "not found", or a static binary
            name, path = match.groups()
            if name is None:
                loader = Path(path)
            else:
                libraries.setdefault(name, Path(path))
    return libraries, loader


def assemble(root: Path, interp: Interpreter | None = None) -> Interpreter:
    """Write the root filesystem under `root`; return the interpreter it was made from."""
    interp = interp or this_interpreter()
    usr = root / PREFIX.lstrip("/")
    (usr / "bin").mkdir(parents=True)
    shutil.copy2(interp.binary, usr / "bin" / "python3")
    os.symlink("python3", usr / "bin" / f"python{interp.version}")
    lib = root / interp.lib.lstrip("/")
    shutil.copytree(interp.stdlib, lib, ignore=_skip_stdlib, symlinks=False)
    dynload = lib / "lib-dynload"
    shutil.copytree(interp.dynload, dynload,
                    ignore=lambda d, names: {n for n in names if n.startswith(DYNLOAD_SKIP)})
    site = root / interp.site_packages.lstrip("/")
    site.mkdir(parents=True, exist_ok=True)
    objects = _copy_dists(site)
    _copy_package(site)
    libraries, loader = shared_libraries([interp.binary, *dynload.glob("*.so"), *objects])
    for name, path in libraries.items():
        shutil.copy2(path.resolve(), usr / "lib" / name)
    if loader is not None:
        (root / loader.parent.relative_to("/")).mkdir(parents=True, exist_ok=True)
        shutil.copy2(loader.resolve(), root / loader.relative_to("/"))
    tmp = root / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    compileall.compile_dir(lib, ddir=interp.lib, quiet=1, workers=0,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return interp
