"""Readiness as objects: a URL, a timeout, a poll interval and what to check on failure."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import requests


@dataclass(frozen=True)
class Readiness:
    """Poll `url` until it answers 2xx, within `timeout_s`."""

    name: str
    url: str
    timeout_s: float = 60.0
    interval_s: float = 0.05

    def probe(self) -> bool:
        try:
            return requests.get(self.url, timeout=1.0).ok
        except requests.RequestException:
            return False


@dataclass
class ReadyResult:
    name: str
    ready: bool
    seconds: float


def wait_all(checks: list[Readiness], *, alive: Callable[[str], bool] = lambda name: True,
             on_ready: Callable[[ReadyResult], None] = lambda result: None) -> list[ReadyResult]:
    """Poll every check in parallel; a check ends early when `alive(name)` turns False."""
    results: dict[str, ReadyResult] = {}
    started = time.monotonic()

    def poll(check: Readiness) -> None:
        ready = False
        while time.monotonic() - started < check.timeout_s:
            if check.probe():
                ready = True
                break
            if not alive(check.name):
                break
            time.sleep(check.interval_s)
        results[check.name] = ReadyResult(check.name, ready, time.monotonic() - started)
        on_ready(results[check.name])

    threads = [threading.Thread(target=poll, args=(check,), daemon=True) for check in checks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[check.name] for check in checks]
