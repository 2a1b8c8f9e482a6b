"""Build the stack's images locally, so the Docker runtime needs no registry.

`prom/prometheus:v3.14.0` (Prometheus and the collector) is FROM scratch plus the static
`prometheus` and `promtool` that `scillm-stack install` put in the cache; the demo image
`scillm-stack/demo:<version>` is FROM scratch plus a root filesystem made from this
machine's Python (see `rootfs`). Each image carries a digest of its inputs in a label, so
`build` skips an image that is current and rebuilds a stale one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import docker
import docker.errors

from scillm_stack import binaries, rootfs
from scillm_stack.errors import ComponentError, InstallError
from scillm_stack.spec import DEMO, PROMETHEUS

BUILT_LABEL = "scillm-stack.built-locally"
INPUTS_LABEL = "scillm-stack.inputs"
BUILD_HINT = "run `scillm-stack images build` (it builds the images locally, no registry needed)"

PROMETHEUS_DOCKERFILE = f"""\
FROM scratch
COPY bin/ /bin/
COPY etc/ /etc/prometheus/
COPY data/ /prometheus/
WORKDIR /prometheus
EXPOSE {PROMETHEUS.port}
VOLUME ["/prometheus"]
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
"""
# The official image's default: Prometheus scraping itself.
DEFAULT_PROMETHEUS_YML = f"""\
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:{PROMETHEUS.port}"]
"""

DEMO_DOCKERFILE = f"""\
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin LD_LIBRARY_PATH=/usr/local/lib PYTHONHOME=/usr/local \\
    PYTHONPATH=/usr/local/lib/python{{version}}/site-packages PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 LANG=C.UTF-8 HOME=/tmp \\
    SCILLM_METRICS=prom SCILLM_METRICS_ADDR=0.0.0.0 SCILLM_METRICS_PORT={DEMO.port}
WORKDIR /tmp
EXPOSE {DEMO.port} {DEMO.extra_ports["control"]}
ENTRYPOINT ["/usr/local/bin/python3", "-m", "scillm_stack"]
CMD ["demo", "--control-addr=0.0.0.0"]
"""


@dataclass(frozen=True)
class Built:
    """One image after `build`: what happened, how long it took, how big it is."""

    image: str
    action: str  # "built" or "current"
    seconds: float
    size_mb: float


def client() -> docker.DockerClient:
    """A Docker client that answers, else DockerUnavailableError."""
    from scillm_stack.docker_runtime import connect

    return connect()


def _existing(api: docker.DockerClient, tag: str) -> docker.models.images.Image | None:
    try:
        return api.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise InstallError(f"cannot inspect {tag}: {exc.explanation or exc}",
                           hint="check `docker info` and the daemon's log") from None


def _drop(api: docker.DockerClient, old: docker.models.images.Image | None, new: docker.models.images.Image) -> None:
    """Remove the image a rebuild replaced, so rebuilds leave no dangling layers behind."""
    if old is not None and old.id != new.id and (old.labels or {}).get(BUILT_LABEL):
        try:
            api.images.remove(old.id)
        except docker.errors.APIError:
            pass  # a container still uses it; `docker image prune` removes it later


def _build(api: docker.DockerClient, context: Path, tag: str, inputs: str) -> docker.models.images.Image:
    labels = {BUILT_LABEL: "true", INPUTS_LABEL: inputs}
    try:
        image, _ = api.images.build(path=str(context), tag=tag, rm=True, forcerm=True, labels=labels)
    except docker.errors.BuildError as exc:
        lines = "".join(str(step.get("stream") or step.get("error") or "") for step in exc.build_log)
        raise InstallError(f"building {tag} failed: {exc.msg}\n{lines[-2000:]}",
                           hint="is the disk full? `docker system df`; then try again with --force") from None
    except docker.errors.APIError as exc:
        raise InstallError(f"building {tag} failed: {exc.explanation or exc}",
                           hint="check `docker info` and the daemon's log") from None
    return image


def _hash_files(*paths: Path, text: str = "") -> str:
    digest = hashlib.sha256(text.encode())
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _timed(api: docker.DockerClient, tag: str, inputs: str, force: bool, say: Callable[[str], None],
           fill: Callable[[Path], None]) -> Built:
    """Build `tag` from a context `fill` writes, unless an image with these inputs exists."""
    started = time.monotonic()
    old = _existing(api, tag)
    if old is not None and not force and (old.labels or {}).get(INPUTS_LABEL) == inputs:
        return Built(tag, "current", time.monotonic() - started, old.attrs["Size"] / 1e6)
    say(f"building {tag}")
    with tempfile.TemporaryDirectory(prefix="scillm-image-") as tmp:
        fill(Path(tmp))
        image = _build(api, Path(tmp), tag, inputs)
    _drop(api, old, image)
    return Built(tag, "built", time.monotonic() - started, image.attrs["Size"] / 1e6)


def build_prometheus(api: docker.DockerClient, *, force: bool = False,
                     say: Callable[[str], None] = lambda msg: None) -> Built:
    """`prom/prometheus:<pinned>` from the cached static binaries (Prometheus and collector)."""
    located = [binaries.require(PROMETHEUS, name) for name in ("prometheus", "promtool")]
    for found in located:
        if found.source != "cache":
            raise ComponentError(f"the image needs the pinned static {found.path.name} {PROMETHEUS.version}, "
                                 f"found {found.version} on PATH ({found.path})",
                                 hint=f"run `scillm-stack install {PROMETHEUS.component}`")
    inputs = _hash_files(*(found.path for found in located), text=PROMETHEUS_DOCKERFILE)

    def fill(context: Path) -> None:
        for sub in ("bin", "etc", "data"):
            (context / sub).mkdir()
        for found in located:
            _link_or_copy(found.path, context / "bin" / found.path.name)
        (context / "etc" / "prometheus.yml").write_text(DEFAULT_PROMETHEUS_YML)
        (context / "Dockerfile").write_text(PROMETHEUS_DOCKERFILE)

    return _timed(api, PROMETHEUS.image, inputs, force, say, fill)


def build_demo(api: docker.DockerClient, *, force: bool = False,
               say: Callable[[str], None] = lambda msg: None) -> Built:
    """`scillm-stack/demo:<version>` from this machine's Python and this package."""
    interp = rootfs.this_interpreter()
    dockerfile = DEMO_DOCKERFILE.replace("{version}", interp.version)
    inputs = _hash_files(text=rootfs.inputs_digest(interp) + dockerfile)

    def fill(context: Path) -> None:
        rootfs.assemble(context / "rootfs", interp)
        (context / "Dockerfile").write_text(dockerfile)

    return _timed(api, DEMO.image, inputs, force, say, fill)


def build_all(api: docker.DockerClient, *, force: bool = False,
              say: Callable[[str], None] = lambda msg: None) -> list[Built]:
    """Every image the Docker runtime runs."""
    return [build_prometheus(api, force=force, say=say), build_demo(api, force=force, say=say)]
