"""Render component configs from `stack/` for one runtime, profile and set of ports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

from scillm_stack import rules
from scillm_stack.resources import stack_dir
from scillm_stack.spec import Thresholds, Timing


@dataclass(frozen=True)
class Addresses:
    """How services reach each other: 127.0.0.1 ports natively, service names in Docker."""

    prometheus: str
    demo: str

    @classmethod
    def native(cls, ports: dict[str, int]) -> Addresses:
        return cls(prometheus=f"127.0.0.1:{ports['prometheus']}", demo=f"127.0.0.1:{ports['demo']}")


def render_template(relative: str, **values: str) -> str:
    """Fill a `stack/` template; a missing value is a KeyError naming it."""
    return Template((stack_dir() / relative).read_text()).substitute(values)


def render_stack(dest: Path, *, timing: Timing, thresholds: Thresholds, addresses: Addresses) -> Path:
    """Write every config of the stack under `dest/<service>/`; return `dest`."""
    prometheus_dir = dest / "prometheus"
    (prometheus_dir / "rules").mkdir(parents=True, exist_ok=True)
    (prometheus_dir / "prometheus.yml").write_text(render_template(
        "prometheus/prometheus.yml.tmpl", profile=timing.name,
        scrape_interval=timing.scrape_interval, evaluation_interval=timing.evaluation_interval,
        demo_target=addresses.demo, prometheus_target=addresses.prometheus,
    ))
    rules.write_rules(prometheus_dir / "rules", timing, thresholds)
    return dest
