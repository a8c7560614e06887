"""Command line: ``crossbar-sim run SCENARIO.yaml [--out DIR] [--set key.path=value ...] [--seed N]``.

User errors end with exit status 2 and one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crossbar_sim.config import ConfigError, load_scenario
from crossbar_sim.data import DataError
from crossbar_sim.ep import SimulationError
from device_models import DeviceModelError

USER_ERRORS = (ConfigError, DataError, DeviceModelError, SimulationError)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crossbar-sim", description="Equilibrium Propagation on simulated memristor crossbars.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train a scenario on its crossbar (and its ideal twin)")
    run.add_argument("scenario", help="scenario YAML file")
    run.add_argument("--out", help="run directory (default runs/<scenario name>)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override one scenario key; repeatable")
    run.add_argument("--seed", type=int, help="override the scenario's seed")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _run(args) -> int:
    scenario = load_scenario(args.scenario, args.overrides, args.seed)
    out = Path(args.out or Path("runs") / scenario.name)
    from crossbar_sim.run import run_scenario  # imports Numba kernels; keep `--help` fast

    metrics = run_scenario(scenario, out, progress=not args.quiet)
    line = f"{scenario.name}: crossbar ({metrics['device']}) test accuracy {metrics['test_accuracy']:.4f}"
    if "ideal" in metrics:
        line += f", ideal test accuracy {metrics['ideal']['test_accuracy']:.4f}"
    print(line + f"  ({metrics['wall_seconds']:.1f} s; results in {out})")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": _run}[args.command](args)
    except USER_ERRORS as exc:
        print(f"crossbar-sim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("crossbar-sim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
