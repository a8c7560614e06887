"""The quickstart network trained on every device preset: what each device costs in accuracy and pulses.

Runs scenarios/quickstart.yaml (digits 64-100-10, 15 epochs, centered EP) with ``hardware.device`` set to
each preset in turn (its own noise figures; the quickstart's periphery: 8-bit DAC/ADC, 256x256 tiles,
w_max 1, stochastic rounding), plus the ideal twin once, and writes ``device_table.md`` (the README table) and
``device_table.csv`` under --out, with one run directory per preset.
Usage: python benchmarks/device_table.py [--epochs N] [--out benchmarks/results/device_table]
"""
from __future__ import annotations

import argparse
import csv
import platform
from pathlib import Path

from crossbar_sim.config import load_scenario
from crossbar_sim.run import run_scenario
from device_models.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "device_table"))
    args = p.parse_args()
    out = Path(args.out)
    base = yaml_base(args.epochs, args.seed)
    rows = []
    ideal_acc = None
    for model in sorted({p.model for p in PRESETS.values()}):
        # Compile each model's kernels first, so that wall times compare training, not compilation.
        warm = {**base, "train": {**base["train"], "epochs": 1}, "data": {**base["data"], "train_limit": 64},
                "hardware": {**base["hardware"], "device": {"model": model}}, "compare_ideal": False}
        run_scenario(load_scenario(raw=warm), out / "_warmup", progress=False, echo=lambda *_: None)
    for name in sorted(PRESETS):
        raw = {**base, "hardware": {**base["hardware"], "device": {"preset": name}}}
        raw["compare_ideal"] = ideal_acc is None
        sc = load_scenario(raw=raw)
        m = run_scenario(sc, out / name, progress=False, echo=lambda *_: None)
        if ideal_acc is None:
            ideal_acc = m["ideal"]["test_accuracy"]
        rows.append({"preset": name, "model": PRESETS[name].model, "test_accuracy": m["test_accuracy"],
                     "ideal_test_accuracy": ideal_acc, "pulses_per_epoch": m["pulse_count"] / args.epochs,
                     "max_device_pulses": m["max_device_pulses"], "wall_seconds": m["wall_seconds"]})
        print(f"{name:16s} test {m['test_accuracy']:.4f}  pulses/epoch {m['pulse_count'] / args.epochs:12.0f}"
              f"  {m['wall_seconds']:.1f} s")
    with open(out / "device_table.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["| preset | model | test accuracy | ideal twin | pulses per epoch | most pulses on one device | wall time |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['preset']} | {r['model']} | {100 * r['test_accuracy']:.1f}% | {100 * r['ideal_test_accuracy']:.1f}% "
              f"| {r['pulses_per_epoch']:,.0f} | {r['max_device_pulses']:,} | {r['wall_seconds']:.1f} s |" for r in rows]
    note = (f"\ndigits 64-100-10, {args.epochs} epochs, seed {args.seed}; `python benchmarks/device_table.py` on "
            f"{platform.machine()}, 2 cores. Wall time is the crossbar run alone, Numba compilation excluded.\n")
    (out / "device_table.md").write_text("\n".join(lines) + "\n" + note)
    print("\n".join(lines) + note)


def yaml_base(epochs: int, seed: int) -> dict:
    import yaml

    raw = yaml.safe_load((ROOT / "scenarios" / "quickstart.yaml").read_text())
    raw["train"]["epochs"] = epochs
    raw["seed"] = seed
    raw["name"] = "device_table"
    return raw


if __name__ == "__main__":
    main()
