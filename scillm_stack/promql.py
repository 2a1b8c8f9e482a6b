"""A small Prometheus HTTP API client; every failure is a PromQLError with a hint."""

from __future__ import annotations

from typing import Any

import requests

from scillm_stack.errors import PromQLError


class Prometheus:
    """Instant queries, alerts, targets and exemplars against one Prometheus."""

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, **params: Any) -> Any:
        try:
            response = requests.get(f"{self.url}{path}", params=params, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise PromQLError(f"cannot reach Prometheus at {self.url} ({exc.__class__.__name__})",
                              hint="is the stack up? `scillm-stack status`") from None
        try:
            body = response.json()
        except ValueError:
            raise PromQLError(f"{self.url}{path} answered {response.status_code} without JSON") from None
        if body.get("status") != "success":
            raise PromQLError(f"Prometheus rejected {params.get('query', path)!r}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant vector result of `expr` (a scalar comes back as one unlabelled sample)."""
        data = self._get("/api/v1/query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def query_range(self, expr: str, *, start: float, end: float, step: str) -> list[dict[str, Any]]:
        """Range matrix of `expr`, as a dashboard panel asks for it."""
        return self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)["result"]

    def value(self, expr: str) -> float | None:
        """The single value of `expr`, or None when it returns nothing."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/alerts")["alerts"]

    def alert_state(self, name: str) -> str:
        """firing, pending or inactive."""
        states = {a["state"] for a in self.alerts() if a["labels"].get("alertname") == name}
        return "firing" if "firing" in states else "pending" if "pending" in states else "inactive"

    def targets(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/targets")["activeTargets"]

    def rules(self) -> list[dict[str, Any]]:
        return [rule for group in self._get("/api/v1/rules")["groups"] for rule in group["rules"]]

    def exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        return self._get("/api/v1/query_exemplars", query=expr, start=start, end=end)
