"""Errors of scillm-stack; the CLI prints any ScillmStackError and exits 1.

    ScillmStackError
     +-- UsageError              a flag, env var or argument has a wrong value
     +-- ComponentError          a component binary is missing or failed to start
     |    +-- PortInUseError     a port the stack needs is taken
     |    +-- ReadinessTimeout   a component did not become ready in time
     +-- DockerUnavailableError  no Docker engine answers
     +-- InstallError            a component could not be downloaded, verified or built
     +-- PromQLError             Prometheus rejected a query or could not be reached
"""

from __future__ import annotations


class ScillmStackError(Exception):
    """Base of every error this package raises on purpose; `hint` says what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n  fix: {self.hint}" if self.hint else base


class UsageError(ScillmStackError):
    """A flag, env var or argument has a wrong value."""


class ComponentError(ScillmStackError):
    """A component binary is missing or failed to start."""


class PortInUseError(ComponentError):
    """A port the stack needs is already taken."""


class ReadinessTimeout(ComponentError):
    """A component did not become ready in time."""


class DockerUnavailableError(ScillmStackError):
    """No Docker engine answers."""


class InstallError(ScillmStackError):
    """A component could not be downloaded, verified or built."""


class PromQLError(ScillmStackError):
    """Prometheus rejected a query or could not be reached."""
