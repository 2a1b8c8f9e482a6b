"""Fake OpenAI-compatible LLM upstream with scripted faults per deployment.

The one legitimate fake of the project: it stands for the LLM provider, which is outside
the product. ``POST /v1/chat/completions`` picks a deployment by the request's ``model``;
each deployment has a :class:`FaultProfile` that a scenario changes while it runs through
``PUT /_control/deployments/<name>``. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEPLOYMENTS: tuple[str, ...] = ("alpha", "beta", "gamma")
MAX_STALL_S = 30.0  # a "timeout" fault never holds a server thread longer than this


@dataclass(frozen=True)
class FaultProfile:
    """How one deployment behaves: latency distribution and fault rates (0..1)."""

    latency_ms: float = 80.0  # median of a log-normal latency
    latency_sigma: float = 0.3
    p_429: float = 0.0  # rate limited
    p_503: float = 0.0  # overloaded (counts as capacity, like 429)
    p_5xx: float = 0.0  # 500/502 server errors
    p_timeout: float = 0.0  # stalls for `stall_s`, past the client's timeout
    p_bad: float = 0.0  # 200 with a body that is not a completion
    dead: bool = False  # closes every connection without an answer
    stall_s: float = 10.0

    def updated(self, changes: dict[str, Any]) -> FaultProfile:
        """A copy with `changes` applied; unknown fields or bad values raise ValueError."""
        known = {f.name: f.type for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown fault field {key!r}; known: {', '.join(known)}")
            if key == "dead":
                if not isinstance(value, bool):
                    raise ValueError("dead must be true or false")
            elif not isinstance(value, (int, float)) or value < 0 or (key.startswith("p_") and value > 1):
                raise ValueError(f"{key} must be a number{' from 0 to 1' if key.startswith('p_') else ' >= 0'}")
        return replace(self, **changes)

    def draw(self, rng: random.Random) -> str:
        """The outcome of one request: ok, 429, 503, 5xx, timeout, bad or dead."""
        if self.dead:
            return "dead"
        roll = rng.random()
        for outcome, rate in (("429", self.p_429), ("503", self.p_503), ("5xx", self.p_5xx),
                              ("timeout", self.p_timeout), ("bad", self.p_bad)):
            if roll < rate:
                return outcome
            roll -= rate
        return "ok"


class FakeUpstream:
    """A running fake upstream: start(), url, set_profile(), stats(), stop()."""

    def __init__(self, *, port: int = 0, seed: int | None = None,
                 deployments: tuple[str, ...] = DEPLOYMENTS) -> None:
        self._profiles = {name: FaultProfile() for name in deployments}
        self._stats: dict[str, dict[str, int]] = {name: {} for name in deployments}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._stopping = threading.Event()
        self._server = _QuietServer(("127.0.0.1", port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeUpstream:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-upstream", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def profiles(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: asdict(p) for name, p in self._profiles.items()}

    def set_profile(self, name: str, changes: dict[str, Any], *, reset: bool = False) -> FaultProfile:
        with self._lock:
            if name not in self._profiles:
                raise KeyError(name)
            base = FaultProfile() if reset else self._profiles[name]
            self._profiles[name] = base.updated(changes)
            return self._profiles[name]

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: dict(counts) for name, counts in self._stats.items()}

    def _serve(self, deployment: str) -> tuple[str, float, float]:
        """Decide outcome, latency and stall for one request, and count it."""
        with self._lock:
            profile = self._profiles[deployment]
            outcome = profile.draw(self._rng)
            latency = self._rng.lognormvariate(0.0, profile.latency_sigma) * profile.latency_ms / 1000
            counts = self._stats[deployment]
            counts[outcome] = counts.get(outcome, 0) + 1
        return outcome, min(latency, MAX_STALL_S), min(profile.stall_s, MAX_STALL_S)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (its timeout) is expected here; say nothing."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _handler_for(upstream: FakeUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.upstream = upstream
    return Handler


class _Handler(BaseHTTPRequestHandler):
    upstream: FakeUpstream
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle + the client's
    # delayed ACK add ~40 ms to every keep-alive answer on top of the scripted latency.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep stderr quiet
        return

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/_control/deployments":
            self._reply(200, self.upstream.profiles())
        elif self.path == "/_control/stats":
            self._reply(200, self.upstream.stats())
        elif self.path in ("/healthz", "/"):
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": {"message": f"no route {self.path}"}})

    def do_PUT(self) -> None:  # noqa: N802
        prefix = "/_control/deployments/"
        if not self.path.startswith(prefix):
            self._reply(404, {"error": {"message": f"no route {self.path}"}})
            return
        name = self.path[len(prefix):]
        try:
            body = self._body()
            reset = bool(body.pop("_reset", False)) if isinstance(body, dict) else False
            profile = self.upstream.set_profile(name, body if isinstance(body, dict) else {}, reset=reset)
        except KeyError:
            self._reply(404, {"error": {"message": f"no deployment {name!r}"}})
        except ValueError as exc:
            self._reply(400, {"error": {"message": str(exc)}})
        else:
            self._reply(200, asdict(profile))

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/v1/chat/completions":
            self._reply(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            request = self._body()
            deployment = request["model"]
        except (ValueError, KeyError, TypeError):
            self._reply(400, {"error": {"message": "body must be JSON with a model field"}})
            return
        if deployment not in self.upstream.profiles():
            self._reply(404, {"error": {"message": f"model {deployment!r} not found"}})
            return
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._reply(401, {"error": {"message": "missing bearer token"}})
            return
        self._complete(deployment, request)

    def _complete(self, deployment: str, request: dict[str, Any]) -> None:
        outcome, latency, stall = self.upstream._serve(deployment)  # noqa: SLF001
        if outcome == "dead":
            self.close_connection = True
            return
        if outcome == "timeout":
            self.upstream._sleep(stall)  # noqa: SLF001
            self.close_connection = True
            return
        self.upstream._sleep(latency)  # noqa: SLF001
        errors = {
            "429": (429, "rate limit exceeded", {"Retry-After": "0"}),
            "503": (503, "model overloaded", {}),
            "5xx": (random.choice((500, 502)), "internal error", {}),
        }
        if outcome in errors:
            status, message, headers = errors[outcome]
            self._reply(status, {"error": {"message": message, "type": outcome}}, headers)
        elif outcome == "bad":
            self._reply(200, b"<html>upstream proxy error</html>")
        else:
            self._reply(200, _completion_body(deployment, request))


def _completion_body(deployment: str, request: dict[str, Any]) -> dict[str, Any]:
    prompt = json.dumps(request.get("messages", ""))
    return {
        "id": f"chatcmpl-{random.getrandbits(48):012x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": deployment,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 1,
                  "total_tokens": len(prompt) // 4 + 1},
    }
