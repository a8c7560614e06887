"""Issue 5's crossbar comparison, from its sweeps: each crossbar run's final test accuracy beside its ideal twin
(same p, same learning rate), the share of each adjacent block's intended update that the deterministic rounding
lost in the last epoch (and of the layer-skipping blocks' together), and the pulses written; a Markdown table on stdout and a figure of the lost shares.

Usage: python benchmarks/seeds/gammell/crossbar_table.py [--sweep benchmarks/results/gammell/crossbar_100x5]
           [--ideal DIR ...] [--out FIGURE.png]

The ideal twins are the run directories under each ``--ideal`` sweep (by default the Figure 4 sweep, whose runs
use lr 0.03, and ``crossbar_100x5_ideal``, lr 0.3), matched on network.p and train.lr from their config.yaml.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parents[2] / "results" / "gammell"


def _runs(sweep: Path):
    """(config, metrics) of every finished run directory under ``sweep``."""
    for metrics in sorted(sweep.glob("*/metrics.json")):
        config = yaml.safe_load((metrics.parent / "config.yaml").read_text())
        yield config, json.loads(metrics.read_text())


def _key(config) -> tuple[float, float]:
    return float(config["network"]["p"]), float(config["train"]["lr"])


def _network(p: float) -> str:
    return "layered" if p == 0 else f"small-world p {p:g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", default=str(RESULTS / "crossbar_100x5"))
    ap.add_argument("--ideal", nargs="*", default=[str(RESULTS / "mnist_100x5"), str(RESULTS / "crossbar_100x5_ideal")])
    ap.add_argument("--out", default=None, help="figure path (default: lost_updates.png in the sweep)")
    args = ap.parse_args()
    sweep = Path(args.sweep)
    ideal = {_key(c): m["test_accuracy"] for d in args.ideal for c, m in _runs(Path(d))}
    rows = []
    for config, m in _runs(sweep):
        p, lr = _key(config)
        last = m["diagnostics"]["epochs"][-1]
        rows.append({"bits": config["hardware"]["device"]["bits"], "p": p, "lr": lr, "test": m["test_accuracy"],
                     "ideal": ideal.get((p, lr)), "lost": last["lost_fraction"], "pulses": m["pulse_count"],
                     "skip": last.get("lost_fraction_skip"),
                     "epochs": len(m["history"]), "layers": m["diagnostics"]["layers"]})
    rows.sort(key=lambda r: (-r["bits"], r["lr"], r["p"]))
    print(f"| bits | network | lr | test accuracy, {rows[0]['epochs'] if rows else '?'} epochs | ideal twin "
          "| lost, adjacent blocks 1 ... 6 | lost, skip blocks | pulses |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        twin = "-" if r["ideal"] is None else f"{100 * r['ideal']:.2f}%"
        lost = ", ".join(f"{x:.2f}" for x in r["lost"])
        skip = "-" if r["skip"] is None else f"{r['skip']:.2f}"
        print(f"| {r['bits']} | {_network(r['p'])} | {r['lr']:g} | {100 * r['test']:.2f}% | {twin} | {lost} "
              f"| {skip} | {r['pulses']:,} |")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=120, sharey=True)
    for ax, bits in zip(axes, (8, 4)):
        mine = [r for r in rows if r["bits"] == bits]
        for r in mine:
            line, = ax.plot(range(1, len(r["lost"]) + 1), r["lost"], "-o",
                            label=f"{_network(r['p'])}, lr {r['lr']:g}: {100 * r['test']:.1f}%")
            if r["skip"] is not None:  # the skip blocks' share, drawn at the right edge in the run's colour
                ax.plot([len(r["lost"]) + 0.5], [r["skip"]], "s", color=line.get_color())
        ax.set_title(f"{bits}-bit linear_step, deterministic rounding")
        ax.set_xlabel("adjacent block into layer l (squares: the skip blocks together)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("share of the update lost (last epoch)")
    fig.tight_layout()
    out = Path(args.out) if args.out else sweep / "lost_updates.png"
    fig.savefig(out)
    print(f"\nfigure: {out}")


if __name__ == "__main__":
    main()
