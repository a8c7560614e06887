"""Command line.

* ``crossbar-sim run SCENARIO.yaml [--out DIR] [--set key.path=value ...] [--seed N]``
* ``crossbar-sim run --resume DIR``: continue a run from its last checkpoint (an epoch's end, or at most
  ``--checkpoint-minutes`` into the epoch after)
* ``crossbar-sim sweep SCENARIO.yaml --grid key.path=v1,v2 [--repeats N] [--workers N | --scheduler ADDR] --out DIR``
* ``crossbar-sim report DIR``: sweep.csv, plots and summary.md of a sweep
* ``crossbar-sim devices``: the device models and presets, with their parameters, units and defaults
* ``crossbar-sim device show NAME [--set param=value ...] --out DIR``: plots of a device's pulse response

User errors end with exit status 2 and one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from crossbar_sim.checkpoint import CheckpointError
from crossbar_sim.config import ConfigError, load_scenario
from crossbar_sim.data import DataError
from crossbar_sim.ep import SimulationError
from crossbar_sim.report import metric_of
from device_models import DeviceModelError

USER_ERRORS = (ConfigError, CheckpointError, DataError, DeviceModelError, SimulationError)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crossbar-sim", description="Equilibrium Propagation on simulated memristor crossbars.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train a scenario on its crossbar (and its ideal twin)")
    run.add_argument("scenario", nargs="?", help="scenario YAML file")
    run.add_argument("--out", help="run directory (default runs/<scenario name>)")
    run.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override one scenario key; repeatable")
    run.add_argument("--seed", type=int, help="override the scenario's seed")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--checkpoint-minutes", type=float, default=10.0, metavar="M",
                     help="inside an epoch, save a checkpoint at most every M minutes (default 10; 0: every batch); "
                          "one is always saved after each epoch")
    sw = sub.add_parser("sweep", help="run a scenario over a grid of values and repeats, in parallel")
    sw.add_argument("scenario", help="scenario YAML file (its sweep: block, if any, gives grid and repeats)")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY.PATH=V1,V2,...",
                    help="values of one scenario key; repeatable (the grid is their product)")
    sw.add_argument("--repeats", type=int, help="runs per grid point, with seeds seed, seed+1, ...")
    sw.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                    help="override one key of every point; repeatable")
    sw.add_argument("--out", help="sweep directory (default sweeps/<scenario name>)")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on an existing Dask cluster")
    sw.add_argument("--executor", choices=("auto", "dask", "processes"), default="auto",
                    help="local workers: a Dask LocalCluster (auto when Dask is installed) or plain processes")
    sw.add_argument("--threads", type=int, help="Numba threads per point (default: cores / workers; 1 on a cluster)")
    sw.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to reach --scheduler")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    rep = sub.add_parser("report", help="rebuild sweep.csv, plots and summary.md of a sweep directory")
    rep.add_argument("dir", help="a sweep's --out (or a directory of runs)")
    sub.add_parser("devices", help="list device models and presets with their parameters")
    dev = sub.add_parser("device", help="look at one device model or preset")
    dev_sub = dev.add_subparsers(dest="device_command", required=True)
    show = dev_sub.add_parser("show", help="plot the pulse response, step sizes and reachable levels")
    show.add_argument("name", help="a device model or preset (see `crossbar-sim devices`)")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="PARAM=VALUE",
                      help="override one device parameter; repeatable")
    show.add_argument("--out", required=True, help="directory for pulse_response.png and .csv")
    show.add_argument("--devices", type=int, default=200, help="devices sampled for the spread band")
    return p


def _run(args) -> int:
    if not args.checkpoint_minutes >= 0:
        raise ConfigError(f"--checkpoint-minutes: expected a number >= 0, got {args.checkpoint_minutes}")
    every = args.checkpoint_minutes * 60.0
    if args.resume:
        if args.scenario or args.out or args.overrides or args.seed is not None:
            raise ConfigError("--resume DIR: continues DIR as it was started; give no SCENARIO, --out, --set or --seed")
        from crossbar_sim.run import resume_run  # imports Numba kernels; keep `--help` fast

        out = Path(args.resume)
        scenario, metrics = resume_run(out, progress=not args.quiet, checkpoint_seconds=every)
    else:
        if not args.scenario:
            raise ConfigError("run: give a SCENARIO file, or --resume DIR")
        scenario = load_scenario(args.scenario, args.overrides, args.seed)
        out = Path(args.out or Path("runs") / scenario.name)
        from crossbar_sim.run import run_scenario

        metrics = run_scenario(scenario, out, progress=not args.quiet, checkpoint_seconds=every)
    m = metric_of(metrics)
    line = f"{scenario.name}: crossbar ({metrics['device']}) test {m} {metrics[f'test_{m}']:.4f}"
    if "ideal" in metrics:
        line += f", ideal test {m} {metrics['ideal'][f'test_{m}']:.4f}"
    print(line + f"  ({metrics['wall_seconds']:.1f} s; results in {out})")
    return 0


def _sweep(args) -> int:
    from crossbar_sim.sweep import plan, run_sweep

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers: expected an integer >= 1, got {args.workers}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads: expected an integer >= 1, got {args.threads}")
    sweep = plan(args.scenario, args.out, args.grid, args.repeats, args.overrides)
    status = run_sweep(sweep, workers=args.workers, scheduler=args.scheduler, executor=args.executor,
                       threads=args.threads, progress=not args.quiet, connect_timeout=args.connect_timeout)
    failed = [name for name, s in status.items() if s == "failed"]
    print(f"sweep: {len(status) - len(failed)} of {len(status)} points done; report in {sweep.out / 'summary.md'}")
    if failed:
        print(f"sweep: {len(failed)} point(s) failed, see error.txt in: {', '.join(failed[:5])}"
              + (" ..." if len(failed) > 5 else ""), file=sys.stderr)
        return 1
    return 0


def _report(args) -> int:
    from crossbar_sim.sweep_report import write_report

    written = write_report(Path(args.dir))
    for path in written.values():
        print(path)
    return 0


def _devices(args) -> int:
    import dataclasses

    from device_models import field_docs, registry
    from device_models.presets import PRESETS

    for name, cls in sorted(registry().items()):
        print(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0]}")
        if cls.ideal:
            print("    (no parameters: exact floating-point weights)")
            continue
        docs = field_docs(cls.params_cls)
        for f in dataclasses.fields(cls.params_cls):
            print(f"    {f.name:15s} = {f.default!s:12.12s} {docs.get(f.name, '')}")
    print("\npresets (use as hardware.device: {preset: NAME, ...overrides}):")
    for name, preset in sorted(PRESETS.items()):
        values = ", ".join(f"{k}={v}" for k, v in preset.values.items())
        print(f"  {name}: {preset.model}({values})\n      source: {preset.source}")
    return 0


def _device_show(args) -> int:
    from crossbar_sim.config import device_from_mapping
    from crossbar_sim.device_plots import show

    raw = {}
    for assignment in args.overrides:
        key, sep, text = assignment.partition("=")
        if not sep:
            raise ConfigError(f"--set {assignment}: expected param=value")
        raw[key.strip()] = yaml.safe_load(text)
    model = device_from_mapping(args.name, raw)
    if model.ideal:
        raise ConfigError("ideal: has no pulse response to show")
    path = show(model, Path(args.out), devices=args.devices)
    print(f"{args.name}: pulse response in {path}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "device":
            return _device_show(args)
        return {"run": _run, "sweep": _sweep, "report": _report, "devices": _devices}[args.command](args)
    except USER_ERRORS as exc:
        print(f"crossbar-sim: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except KeyboardInterrupt:
        print("crossbar-sim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
