"""Test accuracy of runs repeated over seeds, grouped by variant, as a Markdown table.

Reads ``DIR/<variant>_seed<N>/metrics.json`` (one ``crossbar-sim run`` each; several DIRs may be given) and
prints, per variant, each seed's final test accuracy, the mean and the standard deviation over seeds; with more
than one variant, also the mean and spread of each variant's per-seed difference from the first (``--base``),
which cancels what the seed does to both.

    python benchmarks/seeds/deep/seed_table.py benchmarks/results/deep/vgg_6k --base plain --out benchmarks/results/deep/vgg_6k/table.md
"""
from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

RUN = re.compile(r"(?P<variant>.+)_seed(?P<seed>\d+)$")


def collect(*roots: Path) -> dict[str, dict[int, float]]:
    """variant -> seed -> final test accuracy, for every finished run under the ``roots``."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for run in sorted(r for root in roots for r in root.iterdir()):
        m = RUN.match(run.name)
        if m and (run / "metrics.json").exists():
            out[m["variant"]][int(m["seed"])] = json.loads((run / "metrics.json").read_text())["test_accuracy"]
    return dict(out)


def table(acc: dict[str, dict[int, float]]) -> str:
    seeds = sorted({s for v in acc.values() for s in v})
    lines = ["| variant | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | std |",
             "|---|" + "---|" * (len(seeds) + 2)]
    for variant, by_seed in acc.items():
        vals = np.array(list(by_seed.values()))
        lines.append(f"| {variant} | " + " | ".join(f"{by_seed[s]:.4f}" if s in by_seed else "-" for s in seeds)
                     + f" | {vals.mean():.4f} | {vals.std(ddof=1) if len(vals) > 1 else float('nan'):.4f} |")
    (a, ra), *others = acc.items()
    if others:
        lines.append("")
    for b, rb in others:
        both = sorted(set(ra) & set(rb))
        d = np.array([rb[s] - ra[s] for s in both])
        spread = d.std(ddof=1) if len(d) > 1 else float("nan")
        lines += [f"{b} minus {a}, paired by seed over {len(d)} seeds: mean {d.mean():+.4f}, std {spread:.4f}, "
                  f"per seed " + ", ".join(f"{x:+.4f}" for x in d)]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", metavar="DIR")
    ap.add_argument("--base", help="the variant listed first, from which differences are taken")
    ap.add_argument("--out")
    args = ap.parse_args()
    acc = collect(*map(Path, args.roots))
    if not acc:
        raise SystemExit(f"no finished run (<variant>_seed<N>/metrics.json) directly under {' '.join(args.roots)}")
    if args.base is not None:
        if args.base not in acc:
            raise SystemExit(f"--base {args.base}: no such variant under {' '.join(args.roots)} ({', '.join(acc)})")
        acc = {args.base: acc[args.base], **{k: v for k, v in acc.items() if k != args.base}}
    text = table(acc)
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
