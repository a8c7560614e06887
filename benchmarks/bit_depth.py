"""Bit depth against write-back rounding on digits: deterministic rounding loses the updates smaller than
half a level, stochastic rounding keeps them in expectation.

Runs benchmarks/bit_depth_digits.yaml for every (bits, rounding, seed) and the ideal device once per seed,
writes one run directory per point under --out, and there ``bit_depth.csv``, ``bit_depth.md`` (the table in
the README) and ``bit_depth.png``.
Usage: python benchmarks/bit_depth.py [--bits 8 6 4 3] [--seeds 0 1 2] [--out benchmarks/results/bit_depth]
"""
from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import numpy as np

from crossbar_sim.config import load_scenario
from crossbar_sim.run import run_scenario

HERE = Path(__file__).resolve().parent


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4, 3])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--scenario", default=str(HERE / "bit_depth_digits.yaml"))
    p.add_argument("--out", default=str(HERE / "results" / "bit_depth"))
    args = p.parse_args()
    out = Path(args.out)
    points = [("ideal", None, s) for s in args.seeds]
    points += [(r, b, s) for b in args.bits for r in ("round", "stochastic") for s in args.seeds]
    rows = []
    start = time.perf_counter()
    for rounding, bits, seed in points:
        if bits is None:
            overrides, name = ["hardware.device.model=ideal"], f"ideal_seed{seed}"
        else:
            overrides = [f"hardware.device.bits={bits}", f"hardware.update.rounding={rounding}"]
            name = f"bits{bits}_{rounding}_seed{seed}"
        sc = load_scenario(args.scenario, overrides, seed)
        m = run_scenario(sc, out / name, progress=False, echo=lambda *_: None)
        rows.append({"device": "ideal" if bits is None else "linear_step", "bits": bits or "", "rounding": rounding,
                     "seed": seed, "test_accuracy": m["test_accuracy"], "train_accuracy": m["train_accuracy"],
                     "pulses": m["pulse_count"], "seconds": round(m["wall_seconds"], 2)})
        print(f"{name:28s} test {m['test_accuracy']:.4f}  pulses {m['pulse_count']}")
    with open(out / "bit_depth.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    table = summarise(rows, args.bits)
    note = (f"\nMachine: {platform.machine()}, 2 cores; {len(points)} runs in {time.perf_counter() - start:.0f} s "
            f"(`python benchmarks/bit_depth.py`).\n")
    (out / "bit_depth.md").write_text(table + note)
    print(table + note)
    plot(rows, args.bits, out / "bit_depth.png")


def _stats(rows, rounding, bits):
    acc = [r["test_accuracy"] for r in rows if r["rounding"] == rounding and r["bits"] == (bits or "")]
    return np.mean(acc), np.std(acc), len(acc)


def summarise(rows, bits_list) -> str:
    ideal, ideal_sd, n = _stats(rows, "ideal", None)
    lines = [f"| bits | round | stochastic |", "| --- | --- | --- |"]
    for bits in bits_list:
        cells = []
        for rounding in ("round", "stochastic"):
            m, sd, _ = _stats(rows, rounding, bits)
            cells.append(f"{100 * m:.1f} +- {100 * sd:.1f}")
        lines.append(f"| {bits} | " + " | ".join(cells) + " |")
    lines.append(f"| ideal (float) | {100 * ideal:.1f} +- {100 * ideal_sd:.1f} | |")
    return (f"Test accuracy (%) on digits, linear_step devices, mean +- std over {n} seeds:\n\n" + "\n".join(lines) + "\n")


def plot(rows, bits_list, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for rounding, colour in (("round", "tab:red"), ("stochastic", "tab:green")):
        stats = [_stats(rows, rounding, b) for b in bits_list]
        ax.errorbar(bits_list, [100 * s[0] for s in stats], yerr=[100 * s[1] for s in stats], fmt="-o", color=colour,
                    capsize=3, label=f"{rounding} rounding")
    ideal = _stats(rows, "ideal", None)
    ax.axhline(100 * ideal[0], color="tab:blue", ls="--", label="ideal (float)")
    ax.set_xlabel("device bits")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("digits 64-100-10, linear_step")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
