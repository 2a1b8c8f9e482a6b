"""Entry point of the stack's demo service: `python -m scillm_stack demo ...`.

Kept apart from the Typer CLI so the service starts without importing it (startup time
is part of `up`'s time to ready).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from scillm_stack import telemetry
from scillm_stack.load import LoadPlan
from scillm_stack.scenarios import SCENARIOS


def _bounded(low: float, high: float):  # noqa: ANN202 - argparse type
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{raw} is not in [{low:g}, {high:g}]")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scillm-stack demo", description="The stack's demo service (started by `up`).")
    p.add_argument("--control-port", type=int, default=9465, choices=range(1, 65536), metavar="PORT")
    p.add_argument("--control-addr", default="127.0.0.1", help="address of the control API (0.0.0.0 in a container)")
    p.add_argument("--log-file", type=Path)
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="steady")
    p.add_argument("--rps", type=_bounded(0.1, 200), default=5.0)
    p.add_argument("--duration", type=_bounded(1, 7 * 86400), default=6 * 3600.0,
                   help="total seconds before the demo stops by itself")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from scillm_stack.demo.service import Demo, control_server

    if not telemetry.init_from_env():
        print("error: the demo needs metrics on\n  fix: set SCILLM_METRICS=prom (up does this)", file=sys.stderr)
        return 1
    service = Demo(default=LoadPlan(SCENARIOS[args.scenario], rps=args.rps), total_s=args.duration,
                   log_path=args.log_file)
    try:
        server = control_server(service, args.control_port, args.control_addr)
    except OSError as exc:
        print(f"error: cannot serve the control API on {args.control_addr}:{args.control_port} ({exc.strerror})",
              file=sys.stderr)
        return 1
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: service.shutdown())
    try:
        service.run()
    except KeyboardInterrupt:
        service.shutdown()
    finally:
        server.shutdown()
    return 0
