"""`scillm-stack install`: release download, checksum verification, extraction, cache, order."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scillm_stack import install, spec
from scillm_stack.errors import InstallError

SVC = spec.PROMETHEUS
RELEASE = f"prometheus/prometheus/releases/download/v{SVC.version}"
ARCHIVE = f"prometheus-{SVC.version}.linux-{install._arch()}.tar.gz"  # noqa: SLF001


def _fake_binary(name: str) -> bytes:
    return f"#!/bin/sh\necho '{name}, version {SVC.version} (branch: test)'\n".encode()


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"prometheus-{SVC.version}.linux-{install._arch()}/{name}")  # noqa: SLF001
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local release server; returns a function that publishes an archive and its sums."""
    root = tmp_path / "mirror"
    (root / RELEASE).mkdir(parents=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(install.ENV_MIRROR, f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("SCILLM_STACK_CACHE", str(tmp_path / "cache"))

    def publish(data: bytes, digest: str | None = None) -> None:
        (root / RELEASE / ARCHIVE).write_bytes(data)
        sums = f"{digest or hashlib.sha256(data).hexdigest()}  {ARCHIVE}\n0000  other-file.tar.gz\n"
        (root / RELEASE / "sha256sums.txt").write_text(sums)

    yield publish
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return


def test_archive_is_downloaded_verified_and_cached(mirror, tmp_path):
    mirror(_archive({"prometheus": _fake_binary("prometheus"), "promtool": _fake_binary("promtool")}))
    done = install.from_archive(SVC, say=lambda msg: None)
    assert done.source == "archive"
    cached = Path(done.directory)
    assert cached == tmp_path / "cache" / "prometheus" / SVC.version
    assert sorted(p.name for p in cached.iterdir()) == ["install.json", "prometheus", "promtool"]
    from scillm_stack import binaries

    assert binaries.version_of(cached / "prometheus") == SVC.version
    assert install.from_cache(SVC).source == "archive"  # the cache remembers where it came from


def test_checksum_mismatch_is_refused_and_leaves_no_cache(mirror, tmp_path):
    mirror(_archive({"prometheus": b"x", "promtool": b"y"}), digest="0" * 64)
    with pytest.raises(InstallError, match="checksum mismatch"):
        install.from_archive(SVC, say=lambda msg: None)
    assert not (tmp_path / "cache").exists()  # verified before anything is written


def test_archive_without_a_binary_is_refused(mirror, tmp_path):
    mirror(_archive({"prometheus": _fake_binary("prometheus")}))
    with pytest.raises(InstallError, match="has no .*promtool"):
        install.from_archive(SVC, say=lambda msg: None)
    assert list((tmp_path / "cache").iterdir()) == []  # the half-extracted staging dir is gone


def test_unreachable_release_falls_back_to_go_build(mirror, monkeypatch):
    # Nothing published: the archive 404s, so install() must go on to the Go build.
    calls = []
    monkeypatch.setattr(install, "from_path", lambda svc: None)
    monkeypatch.setattr(install, "from_go", lambda svc, say: calls.append(svc.name) or "built")
    messages: list[str] = []
    assert install.install(SVC, say=messages.append) == "built"
    assert calls == ["prometheus"]
    assert any("building from the Go module proxy" in m for m in messages)


def test_cache_wins_over_download(mirror, monkeypatch):
    mirror(_archive({"prometheus": _fake_binary("prometheus"), "promtool": _fake_binary("promtool")}))
    monkeypatch.setattr(install, "from_path", lambda svc: None)
    install.from_archive(SVC, say=lambda msg: None)
    mirror(b"not even a tarball")  # a second download would fail loudly
    assert install.install(SVC).source == "archive"


def test_expected_sha256_reads_sha256sum_format():
    sums = "abc123  a.tar.gz\nDEF456 *b.tar.gz\n"
    assert install.expected_sha256(sums, "b.tar.gz") == "def456"
    with pytest.raises(InstallError, match="do not list c.tar.gz"):
        install.expected_sha256(sums, "c.tar.gz")
