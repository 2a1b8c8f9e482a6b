"""Render component configs from `stack/` for one runtime, profile and set of ports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

import yaml

from scillm_stack import rules
from scillm_stack.resources import stack_dir
from scillm_stack.spec import COLLECTOR_LABEL, DEMO, PROMETHEUS, Thresholds, Timing

BATCH_JOB = "scillm-batch"


@dataclass(frozen=True)
class Addresses:
    """How services reach each other: 127.0.0.1 ports natively, service names in Docker."""

    prometheus: str
    demo: str

    @classmethod
    def native(cls, ports: dict[str, int]) -> Addresses:
        return cls(prometheus=f"127.0.0.1:{ports['prometheus']}", demo=f"127.0.0.1:{ports['demo']}")

    @classmethod
    def docker(cls) -> Addresses:
        """Service DNS names on the stack's network, each at its container (default) port."""
        return cls(prometheus=f"{PROMETHEUS.name}:{PROMETHEUS.port}", demo=f"{DEMO.name}:{DEMO.port}")


def render_template(relative: str, **values: str) -> str:
    """Fill a `stack/` template; a missing value is a KeyError naming it."""
    return Template((stack_dir() / relative).read_text()).substitute(values)


def render_stack(dest: Path, *, timing: Timing, thresholds: Thresholds, addresses: Addresses,
                 collector: bool) -> Path:
    """Write every config of the stack under `dest/<service>/`; return `dest`.

    With the collector, the demo reaches Prometheus only through remote_write (one path,
    so rules never count a sample twice); without it, Prometheus scrapes the demo itself.
    """
    values = dict(profile=timing.name, scrape_interval=timing.scrape_interval,
                  evaluation_interval=timing.evaluation_interval, demo_target=addresses.demo,
                  prometheus_target=addresses.prometheus,
                  collector_label=COLLECTOR_LABEL[0], collector_value=COLLECTOR_LABEL[1])
    prometheus_dir = dest / "prometheus"
    (prometheus_dir / "rules").mkdir(parents=True, exist_ok=True)
    config = render_template("prometheus/prometheus.yml.tmpl", **values)
    if collector:
        parsed = yaml.safe_load(config)
        parsed["scrape_configs"] = [job for job in parsed["scrape_configs"] if job["job_name"] != BATCH_JOB]
        config = f"# Rendered by scillm-stack (profile {timing.name}); the demo arrives by remote_write.\n" + \
            yaml.safe_dump(parsed, sort_keys=False)
    (prometheus_dir / "prometheus.yml").write_text(config)
    rules.write_rules(prometheus_dir / "rules", timing, thresholds)
    collector_dir = dest / "collector"
    collector_dir.mkdir(parents=True, exist_ok=True)
    (collector_dir / "collector.yml").write_text(render_template("collector/collector.yml.tmpl", **values))
    return dest
