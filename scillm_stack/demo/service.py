"""The stack's demo service: fake upstream + instrumented load, switchable scenarios.

It runs the default scenario in bounded batches (each a run with its own run_id) until
its total duration ends or it is stopped. ``POST /run`` on the control port starts another
scenario at once; when that run ends the default resumes. ``GET /status`` tells the
current run and the finished ones. /metrics is served by the telemetry env contract.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from scillm_stack import telemetry
from scillm_stack.demo.upstream import FakeUpstream
from scillm_stack.load import BatchLog, LoadPlan, demo_api_key, new_run_id, run_load
from scillm_stack.scenarios import SCENARIOS

BATCH_S = 300.0  # length of one default-scenario batch
MAX_RUN_S = 3600.0  # longest scenario run the control API accepts
MAX_RPS = 200.0


@dataclass
class Request:
    plan: LoadPlan
    run_id: str


class Demo:
    """Owns the upstream, the load loop and the run history."""

    def __init__(self, *, default: LoadPlan, total_s: float, log_path: Path | None) -> None:
        self.default = default
        self.total_s = total_s
        self.upstream = FakeUpstream()
        self.log = BatchLog(log_path)
        self._api_key = demo_api_key()
        self._requests: queue.Queue[Request] = queue.Queue()
        self._run_stop = threading.Event()
        self._shutdown = threading.Event()
        self.current: dict[str, Any] | None = None
        self.finished: deque[dict[str, Any]] = deque(maxlen=50)

    def submit(self, plan: LoadPlan) -> str:
        """Queue `plan` to run next, cutting the current run short; return its run_id."""
        run_id = new_run_id()
        self._requests.put(Request(plan, run_id))
        self._run_stop.set()
        return run_id

    def shutdown(self) -> None:
        self._shutdown.set()
        self._run_stop.set()

    def run(self) -> None:
        """Serve runs until the total duration ends or shutdown() is called."""
        self.upstream.start()
        deadline = time.monotonic() + self.total_s
        try:
            while not self._shutdown.is_set() and time.monotonic() < deadline:
                try:
                    request = self._requests.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    plan = LoadPlan(self.default.scenario, rps=self.default.rps,
                                    duration_s=max(0.1, min(BATCH_S, remaining)))
                    request = Request(plan, new_run_id())
                self._run_stop = threading.Event()
                if not self._requests.empty():  # a newer request arrived meanwhile; it wins
                    self.finished.append({"run_id": request.run_id, "scenario": request.plan.scenario.name,
                                          "status": "superseded"})
                    continue
                self._run_one(request)
        finally:
            self.upstream.stop()
            self.log.close()

    def _run_one(self, request: Request) -> None:
        plan = request.plan
        self.current = {"run_id": request.run_id, "scenario": plan.scenario.name,
                        "rps": plan.rps, "duration_s": plan.duration_s}
        summary = run_load(plan, upstream_url=self.upstream.url, api_key=self._api_key, log=self.log,
                           stop=self._run_stop, run_id=request.run_id)
        self.finished.append(summary.as_log())
        self.current = None

    def status(self) -> dict[str, Any]:
        return {"current": self.current, "finished": list(self.finished),
                "metrics": telemetry.metrics_endpoint(), "upstream": self.upstream.url}


def parse_run(body: Any) -> LoadPlan:
    """A LoadPlan from a /run body; ValueError names the bad field."""
    if not isinstance(body, dict) or body.get("scenario") not in SCENARIOS:
        raise ValueError(f"scenario must be one of: {', '.join(SCENARIOS)}")
    rps = body.get("rps", 10.0)
    duration = body.get("duration_s", 60.0)
    if not isinstance(rps, (int, float)) or not 0 < rps <= MAX_RPS:
        raise ValueError(f"rps must be a number in (0, {MAX_RPS:g}]")
    if not isinstance(duration, (int, float)) or not 0 < duration <= MAX_RUN_S:
        raise ValueError(f"duration_s must be a number in (0, {MAX_RUN_S:g}]")
    return LoadPlan(SCENARIOS[body["scenario"]], rps=float(rps), duration_s=float(duration))


def control_server(demo: Demo, port: int, addr: str = "127.0.0.1") -> ThreadingHTTPServer:
    """The demo's control API on `addr`:`port` (not started); 0.0.0.0 only inside a container."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/status":
                self._reply(200, demo.status())
            else:
                self._reply(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/run":
                self._reply(404, {"error": f"no route {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                plan = parse_run(json.loads(self.rfile.read(length) or b"{}"))
            except ValueError as exc:
                self._reply(400, {"error": str(exc)})
                return
            self._reply(202, {"run_id": demo.submit(plan), "scenario": plan.scenario.name})

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    return server
