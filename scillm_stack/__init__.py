"""scillm-stack: a local observability stack and test target for SciLLM telemetry."""

__version__ = "0.1.0"
