"""Gammell et al. 2021, Figure 4 from our sweep: final test error and log-spread against the rewiring
probability p, and a Markdown table. Reads the run directories of the p sweep (each its metrics.json).

Usage: python benchmarks/seeds/gammell/figure4.py [--sweep benchmarks/results/gammell/mnist_100x5]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", default=str(HERE.parents[1] / "results" / "gammell" / "mnist_100x5"))
    args = p.parse_args()
    sweep = Path(args.sweep)
    rows = []
    for point in json.loads((sweep / "sweep.json").read_text())["points"]:
        metrics = sweep / point["name"] / "metrics.json"
        if not metrics.is_file():
            continue
        m = json.loads(metrics.read_text())
        epochs = m["diagnostics"]["epochs"]
        rows.append({"p": point["values"]["network.p"], "error": 1 - m["test_accuracy"],
                     "log_spread": epochs[-1]["log_spread"], "epochs": len(m["history"]),
                     "rms": epochs[-1]["rms"], "seconds": m["wall_seconds"]})
    rows.sort(key=lambda r: r["p"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    a.plot([r["p"] for r in rows], [100 * r["error"] for r in rows], "-o")
    a.set_xlabel("rewiring probability p")
    a.set_ylabel(f"test error after {rows[0]['epochs'] if rows else '?'} epochs (%)")
    a.grid(alpha=0.3)
    b.plot([r["p"] for r in rows], [r["log_spread"] for r in rows], "-o", color="tab:red")
    b.set_xlabel("rewiring probability p")
    b.set_ylabel("log-spread of the per-layer RMS correction")
    b.grid(alpha=0.3)
    fig.suptitle(sweep.name + ": error and learning-speed spread against p (Gammell et al. 2021, Fig. 4)", fontsize=9)
    fig.tight_layout()
    fig.savefig(sweep / "figure4.png")
    lines = ["| p | test error | log-spread | RMS correction, first and last layer | epochs | wall time |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['p']} | {100 * r['error']:.2f}% | {r['log_spread']:.3f} | {r['rms'][0]:.1e} / {r['rms'][-1]:.1e} | "
              f"{r['epochs']} | {r['seconds']:.0f} s |" for r in rows]
    text = "\n".join(lines) + "\n"
    (sweep / "figure4.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
