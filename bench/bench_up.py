"""Time from `up` to all-ready against the slowest single component's own time to ready.

Each round starts every component alone (its own state dir and ports), then the whole
stack, all through the native runtime's `up`; rounds interleave so drift hits both sides.
Prints medians and the ratio whole-stack / slowest-single (goal <= 1.2), plus the CPU time each
component burns to get ready: on a machine with few cores that CPU, divided by the cores, is a
floor no orchestration can beat, so the bench prints the ratio to that floor too.
Run: python bench/bench_up.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from scillm_stack import ports as portlib, spec
from scillm_stack.native import NativeRuntime, StackPlan

SERVICES = tuple(s.name for s in spec.SERVICES)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_up(services: tuple[str, ...], cpu: dict[str, list[float]] | None = None) -> float:
    """Seconds from calling up() to every service in `services` being ready (CPU per service into `cpu`)."""
    with tempfile.TemporaryDirectory(prefix="bench-up-") as home:
        runtime = NativeRuntime(Path(home))
        plan = StackPlan(services=services, ports={key: portlib.free_port() for key in spec.ports()},
                         timing=spec.timing("fast"), thresholds=spec.Thresholds())
        started = time.perf_counter()
        runtime.up(plan)
        elapsed = time.perf_counter() - started
        for name, proc in runtime.load().procs.items():
            if cpu is not None:
                cpu.setdefault(name, []).append(cpu_seconds(proc.pid))
        runtime.down()
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    samples: dict[str, list[float]] = {name: [] for name in (*SERVICES, "whole stack")}
    ratios = []
    cpu: dict[str, list[float]] = {}
    for _ in range(rounds):
        singles = {name: timed_up((name,), cpu) for name in SERVICES}
        whole = timed_up(SERVICES)
        for name, seconds in singles.items():
            samples[name].append(seconds)
        samples["whole stack"].append(whole)
        ratios.append(whole / max(singles.values()))
    print(f"{'component':<14}{'median s':>10}{'min s':>9}{'max s':>9}   ({rounds} rounds)")
    for name, values in samples.items():
        print(f"{name:<14}{statistics.median(values):>10.3f}{min(values):>9.3f}{max(values):>9.3f}")
    slowest = max(SERVICES, key=lambda n: statistics.median(samples[n]))
    ratio = statistics.median(samples["whole stack"]) / statistics.median(samples[slowest])
    print(f"whole stack / slowest single ({slowest}): {ratio:.2f}x of medians; "
          f"per-round median {statistics.median(ratios):.2f}x (goal <= 1.2x)")
    cores = os.cpu_count() or 1
    cpu_total = sum(statistics.median(values) for values in cpu.values())
    floor = max(statistics.median(samples[slowest]), cpu_total / cores)
    print("CPU to ready (median s): " + ", ".join(f"{n} {statistics.median(v):.2f}" for n, v in cpu.items())
          + f"; total {cpu_total:.2f} on {cores} cores -> floor {floor:.3f} s; "
          f"whole stack / floor {statistics.median(samples['whole stack']) / floor:.2f}x")


if __name__ == "__main__":
    main()
