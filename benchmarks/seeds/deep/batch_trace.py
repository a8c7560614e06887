"""Follow a scenario's first training batches one by one: phase lengths, activity per state layer and the size
of each block's EP estimate against its weights.

Trains ``--batches`` batches of epoch 1 exactly as a run does (``Trainer.train_batch``: same data order, estimator
and write-back) and prints, per batch: the steps each phase took, the fraction of the batch classified right by
the free phase, the mean free state of each layer (from the input up), the fractions of units at the
activation's bound and at 0, and, per block, the norm of the estimate relative to the norm of the block's weights
(before the write). A network that is collapsing shows its phases shortening and the lower blocks' ratios falling
by orders of magnitude. Writes a Markdown table to ``--out``.

    python benchmarks/seeds/deep/batch_trace.py benchmarks/seeds/deep/fmnist_resnet13.yaml --batches 25 \\
        --set network.init_gain=0.7 --set ep.loss=cross_entropy --out benchmarks/results/deep/trace.md
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numba
import numpy as np

from crossbar_sim.config import load_scenario
from crossbar_sim.run import dataset_for
from crossbar_sim.trainer import Trainer


def trace(scenario: str, overrides: list[str], batches: int, coupling_every: int = 0,
          coupling_images: int = 8) -> list[str]:
    """One Markdown row per batch; with ``coupling_every`` N > 0, every N-th (and the first) also gives the
    largest eigenvalue of the coupling on the free units (``Network.free_coupling_max``) of the batch's first
    ``coupling_images`` free states: median and max over them."""
    sc = load_scenario(scenario, overrides)
    data = dataset_for(sc)
    tr = Trainer(sc, data, sc.hardware.device.build(), progress=False)
    eng, net = tr.engine, tr.engine.network
    bound = net.activation.bound
    sizes = net.sizes[1: net.n_state_layers + 1]
    bs = sc.data.batch_size
    order = tr.rng["order"].permutation(len(data.x_train))
    rows = []
    for b in range(min(batches, (len(order) + bs - 1) // bs)):
        idx = order[b * bs: (b + 1) * bs]
        before = eng.weights()
        est, res, score = tr.train_batch(idx, 1, f"batch {b + 1}")
        right = score / len(idx)
        layers = np.split(res.free_state, np.cumsum(sizes)[:-1], axis=1)
        ratio = [np.linalg.norm(g) / max(np.linalg.norm(w), 1e-30) for g, w in zip(est, before)]
        coupling = "-"
        if coupling_every and (b == 0 or (b + 1) % coupling_every == 0):
            W = [w.astype(np.float64) for w in before]  # the weights the free phase ran on
            tops = [net.free_coupling_max(W, s.astype(np.float64))[1] for s in res.free_state[:coupling_images]]
            coupling = f"{np.median(tops):.3f} / {max(tops):.3f}"
        rows.append(f"| {b + 1} | {' / '.join(str(v) for v in res.steps.values())} | {right:.2f} | "
                    + " ".join(f"{s.mean():.2g}" for s in layers) + " | "
                    + " ".join(f"{(s >= bound).mean():.2f}" for s in layers) + " | "
                    + " ".join(f"{(s <= 0).mean():.2f}" for s in layers) + " | "
                    + " ".join(f"{r:.1e}" for r in ratio) + f" | {coupling} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("--batches", type=int, default=25)
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--coupling-every", type=int, default=0, metavar="N",
                    help="every N batches, the coupling's largest eigenvalue on the free units (no pooling blocks)")
    ap.add_argument("--coupling-images", type=int, default=8)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    start = time.perf_counter()
    rows = trace(args.scenario, args.overrides, args.batches, args.coupling_every, args.coupling_images)
    head = [f"# First training batches: {args.scenario} {' '.join(args.overrides)}",
            f"{platform.machine()}, {numba.get_num_threads()} threads, {time.perf_counter() - start:.0f} s. "
            "'steps': free / nudged phases; 'right': fraction of the batch the free phase classifies right; "
            "per state layer from the input up: mean free state, fraction at the bound, fraction at 0; per block: "
            "|EP estimate| / |weights| before the batch's write; 'D C D': the coupling's largest eigenvalue on the "
            "free units of the batch's first free states (median / max; a strict minimum needs it below 1).", "",
            "| batch | steps | right | mean per layer | at bound | at 0 | estimate / weights per block | D C D |",
            "|---|---|---|---|---|---|---|---|"]
    Path(args.out).write_text("\n".join(head + rows) + "\n")


if __name__ == "__main__":
    main()
