"""`scillm-stack install`: put a pinned component's binaries in the cache.

Resolution order: on PATH at the pinned version, the cache, the official release archive
(sha256-verified against the release's checksum file), then a static build from the Go
module proxy with this machine's Go toolchain. A module with `replace` directives cannot be
`go install`ed at a version, so the module source is fetched with `go mod download` and
built inside a copy of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import requests

from scillm_stack import binaries
from scillm_stack.errors import InstallError
from scillm_stack.paths import cache_home
from scillm_stack.spec import SERVICES, Service

ENV_MIRROR = "SCILLM_STACK_RELEASE_MIRROR"  # replaces https://github.com in release URLs
DOWNLOAD_TIMEOUT = (10, 120)
Say = Callable[[str], None]


@dataclass
class Installed:
    component: str
    version: str
    source: str  # PATH, cache, archive, go-build
    directory: str
    binaries: dict[str, int]  # name -> size in bytes
    build_s: float | None = None
    peak_rss_mb: float | None = None


def installable() -> list[Service]:
    return [svc for svc in SERVICES if svc.install is not None]


def component(name: str) -> Service:
    for svc in installable():
        if svc.name == name:
            return svc
    from scillm_stack.errors import UsageError

    raise UsageError(f"{name!r} is not an installable component",
                     hint=f"choose from: {', '.join(s.name for s in installable())}")


def _arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def _fill(template: str, svc: Service) -> str:
    url = template.format(version=svc.version, arch=_arch())
    mirror = os.environ.get(ENV_MIRROR, "").strip().rstrip("/")
    return url.replace("https://github.com", mirror, 1) if mirror else url


def cache_dir(svc: Service) -> Path:
    return cache_home() / svc.name / svc.version


def _record(svc: Service, source: str, directory: Path, **extra: float | None) -> Installed:
    names = svc.install.archive_members if svc.install else {}
    sizes = {name: (directory / name).stat().st_size for name in names if (directory / name).is_file()}
    return Installed(svc.name, svc.version, source, str(directory), sizes, **extra)


def from_path(svc: Service) -> Installed | None:
    found = {name: shutil.which(name) for name in svc.install.archive_members}
    if all(found.values()) and all(binaries.version_of(p) == svc.version for p in found.values()):
        return _record(svc, "PATH", Path(found[svc.binary]).parent)
    return None


def from_cache(svc: Service) -> Installed | None:
    meta = cache_dir(svc) / "install.json"
    if meta.is_file() and all((cache_dir(svc) / name).is_file() for name in svc.install.archive_members):
        return Installed(**json.loads(meta.read_text()))
    return None


def _commit(svc: Service, staged: Path, installed: Installed) -> Installed:
    """Move a fully staged directory into the cache in one rename."""
    final = cache_dir(svc)
    installed.directory = str(final)
    (staged / "install.json").write_text(json.dumps(asdict(installed), indent=2))
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged.rename(final)
    return installed


def _download(url: str) -> bytes:
    try:
        response = requests.get(url, timeout=DOWNLOAD_TIMEOUT)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise InstallError(f"cannot download {url}: {exc.__class__.__name__}") from None
    return response.content


def expected_sha256(checksums: str, filename: str) -> str:
    """The hex digest a `sha256sum`-style file gives for `filename`."""
    for line in checksums.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == filename:
            return parts[0].lower()
    raise InstallError(f"the release checksums do not list {filename}")


def from_archive(svc: Service, say: Say) -> Installed:
    """Download, verify and extract the official release archive into the cache."""
    url = _fill(svc.install.archive_url, svc)
    say(f"downloading {url}")
    data = _download(url)
    want = expected_sha256(_download(_fill(svc.install.checksums_url, svc)).decode(), url.rsplit("/", 1)[1])
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise InstallError(f"checksum mismatch for {url}: got {got}, release says {want}",
                           hint="the download is corrupt or tampered with; try again or use another mirror")
    staged = Path(tempfile.mkdtemp(prefix=f".{svc.name}-", dir=_ensure(cache_home())))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for name, member in svc.install.archive_members.items():
                member = member.format(version=svc.version, arch=_arch())
                try:
                    source = archive.extractfile(member)
                except KeyError:
                    source = None
                if source is None:
                    raise InstallError(f"{url} has no {member}")
                target = staged / name
                target.write_bytes(source.read())
                target.chmod(0o755)
        return _commit(svc, staged, _record(svc, "archive", staged))
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_logged(cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path, say: Say, what: str) -> None:
    say(f"{what}: {' '.join(cmd[:3])} … (log: {log})")
    started = time.monotonic()
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(cmd)}\n")
        handle.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(30):
                say(f"  still {what}… {time.monotonic() - started:.0f}s")

        threading.Thread(target=heartbeat, daemon=True).start()
        try:
            code = proc.wait()
        finally:
            done.set()
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise InstallError(f"{what} failed (exit {code}); last lines of {log}:\n{tail}")


def from_go(svc: Service, say: Say) -> Installed:
    """Build the pinned module version from the Go module proxy (CGO off, static)."""
    go = shutil.which("go")
    if go is None:
        raise InstallError(f"cannot build {svc.name}: no Go toolchain on PATH",
                           hint="install Go 1.25+ (https://go.dev/dl) or let the release download work")
    src_root = _ensure(cache_home() / "build")
    log = src_root / f"{svc.name}-{svc.version}.log"
    log.write_text("")
    env = {**os.environ, "GOWORK": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    spec = f"{svc.install.go_module}@{svc.install.go_version}"
    say(f"fetching {spec} from the Go module proxy")
    fetched = subprocess.run([go, "mod", "download", "-json", spec], cwd=src_root, env=env,
                             capture_output=True, text=True)
    with log.open("a") as handle:
        handle.write(fetched.stdout + fetched.stderr)
    if fetched.returncode != 0:
        raise InstallError(f"cannot fetch {spec}: {(fetched.stderr or fetched.stdout).strip()[-400:]}",
                           hint="check GOPROXY and network access to the Go module proxy")
    module_dir = Path(json.loads(fetched.stdout)["Dir"])
    src = src_root / f"{svc.name}-{svc.version}"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(module_dir, src)
    for path in src.rglob("*"):  # the module cache is read-only
        path.chmod(path.stat().st_mode | 0o200)
    staged = Path(tempfile.mkdtemp(prefix=f".{svc.name}-", dir=_ensure(cache_home())))
    ldflags = svc.install.ldflags.format(version=svc.version, go_version=svc.install.go_version)
    started = time.monotonic()
    try:
        _run_logged([go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(staged) + "/",
                     *svc.install.go_packages.values()], cwd=src, env=env, log=log, say=say,
                    what=f"building {svc.name} {svc.version}")
        seconds = time.monotonic() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        for name, package in svc.install.go_packages.items():
            built = staged / package.rstrip("/").rsplit("/", 1)[1]
            if built != staged / name:
                built.rename(staged / name)
        return _commit(svc, staged, _record(svc, "go-build", staged, build_s=round(seconds, 1),
                                            peak_rss_mb=round(peak_mb)))
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(src, ignore_errors=True)


def install(svc: Service, *, say: Say = lambda msg: None, force: bool = False) -> Installed:
    """Resolve one component in order: PATH, cache, release archive, Go module proxy."""
    if not force:
        for finder in (from_path, from_cache):
            found = finder(svc)
            if found is not None:
                return found
    try:
        return from_archive(svc, say)
    except InstallError as exc:
        say(f"release archive unavailable ({str(exc).splitlines()[0]}); building from the Go module proxy")
    return from_go(svc, say)


def listing() -> list[dict[str, object]]:
    """Each installable component: version, whether and where it is installed."""
    rows = []
    for svc in installable():
        found = from_path(svc) or from_cache(svc)
        rows.append({"component": svc.name, "version": svc.version,
                     "source": found.source if found else "missing",
                     "directory": found.directory if found else str(cache_dir(svc)),
                     "build_s": found.build_s if found else None,
                     "peak_rss_mb": found.peak_rss_mb if found else None,
                     "binaries": found.binaries if found else {}})
    return rows
