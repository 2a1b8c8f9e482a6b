#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: a virtualenv with scillm-stack and its test
# dependencies in .venv, and the pinned component binaries in ~/.cache/scillm-stack
# (downloaded, or built once from the Go module proxy when downloads are blocked).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Without Go, `scillm-stack install` needs the release download; Debian's prometheus
# (2.42, with promtool) is the fallback the stack accepts when neither works.
if ! command -v go >/dev/null 2>&1 && ! command -v promtool >/dev/null 2>&1; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus
fi

# The Docker runtime and its tests need a running engine. Debian's docker.io is enough:
# every image is built locally (`scillm-stack images build`), nothing is pulled.
if ! command -v dockerd >/dev/null 2>&1; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io
fi
if ! as_root docker info >/dev/null 2>&1; then
  # A daemon that was killed leaves its pid file behind (and, under an init that does not
  # reap, a zombie with that pid); dockerd then refuses to start. Drop a pid file whose
  # process is not a live dockerd.
  for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile" 2>/dev/null || true)
      state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      if [ -z "$pid" ] || [ -z "$state" ] || [ "$state" = Z ]; then as_root rm -f "$pidfile"; fi
    fi
  done
  as_root sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 &'
  for _ in $(seq 1 30); do
    as_root docker info >/dev/null 2>&1 && break
    sleep 1
  done
  as_root docker info >/dev/null 2>&1 || { echo "dockerd did not answer within 30 s; see /tmp/dockerd.log" >&2; exit 1; }
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

# Pinned binaries (cache outside the repo; a no-op once cached).
.venv/bin/scillm-stack install
.venv/bin/scillm-stack install --list

# The Docker runtime's images, from those binaries and this Python (a no-op when current).
.venv/bin/scillm-stack images build
