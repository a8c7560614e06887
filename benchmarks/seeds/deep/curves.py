"""EP runs against their backprop twins epoch by epoch, from the runs' ``history.csv``: a Markdown table per run
(EP test accuracy with its train accuracy and mean free steps, the twin's test accuracy after the same epoch, EP's
gap under it) and one plot of every run's test accuracy against epochs (EP solid, twin dashed).

    python benchmarks/seeds/deep/curves.py \\
        "no skips, 0.002=benchmarks/results/deep/resnet13_aux_noskip_10ep:benchmarks/results/deep/resnet13_aux_noskip_bp_10ep" \\
        --out benchmarks/results/deep/probes_s34/curves.md --plot benchmarks/results/deep/probes_s34/curves.png --target 88

Each argument is ``LABEL=EP_DIR:TWIN_DIR`` (the EP run as ``crossbar-sim run`` writes it, the twin as
``bp_twin.py`` does); the EP rows are the ``crossbar`` run's. A run still in progress shows the epochs it has
finished.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path


def read_history(run: Path, name: str | None = "crossbar") -> dict[int, dict[str, float]]:
    """epoch -> that epoch's row (numbers) of ``run/history.csv``; with a ``run`` column, the rows of ``name``."""
    path = run / "history.csv"
    if not path.exists():
        raise SystemExit(f"{path}: no history.csv (is {run} a run directory?)")
    out = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            if "run" in row and row.pop("run") != name:
                continue
            out[int(row["epoch"])] = {k: float(v) for k, v in row.items() if v not in ("", None)}
    if not out:
        raise SystemExit(f"{path}: no finished epoch" + (f" of the {name!r} run" if name else ""))
    return out


def pair_table(label: str, ep: dict, twin: dict) -> str:
    """One run's Markdown table: each epoch EP finished, beside its twin after the same epoch."""
    lines = [f"### {label}", "", "| epoch | EP test (train, mean free steps) | twin test | EP under its twin |",
             "| --- | --- | --- | --- |"]
    for e in sorted(ep):
        r = ep[e]
        steps = f", {r['mean_free_steps']:.1f}" if "mean_free_steps" in r else ""
        cell = f"{100 * r['test_accuracy']:.2f}% ({100 * r['train_accuracy']:.2f}%{steps})"
        if e in twin:
            t = twin[e]["test_accuracy"]
            lines.append(f"| {e} | {cell} | {100 * t:.2f}% | {100 * (t - r['test_accuracy']):.2f} points |")
        else:
            lines.append(f"| {e} | {cell} | | |")
    if twin:
        last = max(twin)
        lines += ["", f"Twin after its {last} epochs: {100 * twin[last]['test_accuracy']:.2f}%."]
    return "\n".join(lines)


def plot(runs: list[tuple[str, dict, dict]], path: Path, target: float | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (label, ep, twin) in enumerate(runs):
        colour = f"C{i}"
        ax.plot(sorted(ep), [100 * ep[e]["test_accuracy"] for e in sorted(ep)], "o-", color=colour,
                label=f"{label}: EP")
        if twin:
            ax.plot(sorted(twin), [100 * twin[e]["test_accuracy"] for e in sorted(twin)], "s--", color=colour,
                    alpha=0.6, label=f"{label}: twin")
    if target is not None:
        ax.axhline(target, color="k", lw=0.8, ls=":", label=f"target {target:g}%")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_pair(arg: str) -> tuple[str, Path, Path]:
    label, sep, dirs = arg.rpartition("=")
    ep, colon, twin = dirs.partition(":")
    if not sep or not label or not colon or not ep or not twin:
        raise SystemExit(f"{arg!r}: expected LABEL=EP_DIR:TWIN_DIR")
    return label, Path(ep), Path(twin)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", metavar="LABEL=EP_DIR:TWIN_DIR")
    ap.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    ap.add_argument("--plot", default=None, help="draw the curves into this image file")
    ap.add_argument("--target", type=float, default=None, help="a test accuracy (%%) to draw as a line")
    args = ap.parse_args(argv)
    runs = []
    for label, ep_dir, twin_dir in map(parse_pair, args.pairs):
        runs.append((label, read_history(ep_dir), read_history(twin_dir, name=None)))
    text = "\n\n".join(pair_table(*r) for r in runs) + "\n"
    sys.stdout.write(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    if args.plot:
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        plot(runs, Path(args.plot), args.target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
