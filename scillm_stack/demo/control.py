"""Client of the running demo's control API (start a scenario, wait for its summary)."""

from __future__ import annotations

import time
from typing import Any

import requests

from scillm_stack.errors import ComponentError, UsageError


class DemoControl:
    """Talks to the demo service's control port."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = requests.request(method, f"{self.url}{path}", timeout=10, **kwargs)
        except requests.RequestException:
            raise ComponentError(f"the demo does not answer at {self.url}",
                                 hint="start the stack with the demo: `scillm-stack up`") from None
        if response.status_code == 400:
            raise UsageError(response.json().get("error", "bad request"))
        response.raise_for_status()
        return response.json()

    def run(self, scenario: str, *, rps: float, duration_s: float) -> str:
        """Start `scenario` now; return its run_id."""
        return self._call("POST", "/run", json={"scenario": scenario, "rps": rps, "duration_s": duration_s})["run_id"]

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")

    def wait(self, run_id: str, *, timeout_s: float) -> dict[str, Any]:
        """The finished summary of `run_id`, polling until it ends."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for summary in self.status()["finished"]:
                if summary["run_id"] == run_id:
                    return summary
            time.sleep(0.5)
        raise ComponentError(f"demo run {run_id} did not finish within {timeout_s:g}s",
                             hint="see `scillm-stack logs demo`")
