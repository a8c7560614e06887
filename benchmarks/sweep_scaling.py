"""Does a sweep use the cores it is given? Wall time of one sweep with 1 worker and with N workers.

Runs ``crossbar-sim sweep`` on the same scenario and grid, from scratch each time, once per worker setting
(the sweep's default executor: a Dask LocalCluster when Dask is installed), checks that every setting gives
the same numbers, and writes ``results/sweep_scaling.json`` and ``.txt``. The times include starting the
workers and loading the compiled kernels, as a user's sweep does.

Usage: python benchmarks/sweep_scaling.py [--scenario benchmarks/bit_depth_sweep.yaml] [--grid ...] [--repeats N]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def numbers(out: Path) -> dict:
    with open(out / "sweep.csv") as fh:
        return {r["point"]: {k: v for k, v in r.items() if "seconds" not in k} for r in csv.DictReader(fh)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default=str(HERE / "bit_depth_sweep.yaml"))
    p.add_argument("--grid", action="append", default=[], help="passed to crossbar-sim sweep")
    p.add_argument("--repeats", type=int)
    p.add_argument("--settings", nargs="+", default=["1:1", "1:2", "2:1"],
                   help="WORKERS:THREADS per point, each one sweep")
    p.add_argument("--out", default=str(HERE / "results" / "sweep_scaling"))
    args = p.parse_args()
    extra = [a for g in args.grid for a in ("--grid", g)]
    if args.repeats:
        extra += ["--repeats", str(args.repeats)]
    results, tables = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            workers, threads = setting.split(":")
            out = Path(tmp) / setting.replace(":", "_")
            cmd = [sys.executable, "-m", "crossbar_sim.cli", "sweep", args.scenario, "--out", str(out), "--quiet",
                   "--workers", workers, "--threads", threads, *extra]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            tables[setting] = numbers(out)
            results.append({"workers": int(workers), "threads_per_point": int(threads), "points": len(tables[setting]),
                            "wall_seconds": round(wall, 1)})
            print(f"{workers} worker(s) x {threads} thread(s): {len(tables[setting])} points in {wall:.1f} s", flush=True)
    same = all(t == tables[args.settings[0]] for t in tables.values())
    base = results[0]["wall_seconds"]
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} cores; scenario {Path(args.scenario).name} "
             f"{' '.join(extra)}".rstrip(),
             "| workers | Numba threads per point | points | wall time | speed-up over the first row |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['workers']} | {r['threads_per_point']} | {r['points']} | {r['wall_seconds']:.1f} s | "
              f"{base / r['wall_seconds']:.2f}x |" for r in results]
    lines.append(f"same numbers in every setting: {'yes' if same else 'NO'}")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".txt").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"results": results, "same_numbers": same,
                                                    "machine": platform.machine(), "cores": os.cpu_count()},
                                                   indent=2) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
