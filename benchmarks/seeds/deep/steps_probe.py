"""A trained run read after 1, 3, 10, 30, ... free steps: accuracy and, per state layer, the fractions of
units at 0 and at the activation's bound, how much the last step still moved the states (the largest and the
mean change of a unit), and how far the feedback (the relaxed state against the same layer read feedforward)
has moved each layer.

Loads the run's weights as its checkpoint left them (as the arrays read them, without read noise) and relaxes
the test set (``--split train``: the first training images) with the relaxed twin's coordinate dynamics
(:func:`crossbar_sim.bp_twin.relax`, float32 torch, ``ep.omega`` of the run unless ``--omega`` is given).
Writes a Markdown table to ``--out``.

    python benchmarks/seeds/deep/steps_probe.py benchmarks/results/deep/conv_ideal_20ep --steps 1 3 10 30 100 \\
        --out benchmarks/results/deep/steps_conv_ideal_20ep.md
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from crossbar_sim.bp_twin import relax
from crossbar_sim.run import load_run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a run directory with config.yaml and checkpoint.pkl")
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 3, 10, 30, 100])
    ap.add_argument("--limit", type=int, default=None, help="the split's first images only")
    ap.add_argument("--split", choices=("test", "train"), default="test")
    ap.add_argument("--omega", type=float, default=None, help="relaxation factor (default: the run's ep.omega)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    trainer = load_run(args.run)
    net = trainer.network
    omega = trainer.scenario.ep.omega if args.omega is None else args.omega
    if not 0 < omega < 2:
        ap.error(f"--omega {omega}: expected a factor in (0, 2)")
    hi, L = net.activation.bound, net.n_state_layers
    Ws = [torch.from_numpy(np.asarray(W, np.float32)) for W in trainer.engine.weights()]
    Ws = [W if e.mask is None else W * torch.from_numpy(e.full_mask(net.sizes).astype(np.float32))
          for W, e in zip(Ws, net.edges)]
    blocks = [(e.src, e.dst, e.bias, e.conv, W) for e, W in zip(net.state_edges, Ws)]
    readout = net.edges[len(net.state_edges)]
    V = Ws[len(net.state_edges)]
    xs, ys = ((trainer.data.x_test, trainer.data.y_test) if args.split == "test"
              else (trainer.data.x_train, trainer.data.y_train))
    x = torch.from_numpy(np.asarray(xs[: args.limit], np.float32))
    y = np.asarray(ys[: args.limit])
    colors = list(net.colors())
    rows = []
    t0 = time.perf_counter()
    with torch.no_grad():
        chunks = list(torch.split(x, 500))
        first = [relax(torch, c, blocks, L, colors, 1, hi, 1.0) for c in chunks]
        now, done = [None] * len(chunks), 0  # each chunk's states after `done` steps, carried from row to row
        for n in sorted(set(args.steps)):
            pred, at0, athi, moved, fed = [], np.zeros(L), np.zeros(L), np.zeros(L), np.zeros(L)
            mean_moved = np.zeros(L)
            for i, (c, s1) in enumerate(zip(chunks, first)):
                before = relax(torch, c, blocks, L, colors, n - 1 - done, hi, omega, start=now[i])
                s = now[i] = relax(torch, c, blocks, L, colors, 1, hi, omega, start=before)
                logits = s[readout.src] @ V[:-1] + hi * V[-1]
                pred.append(logits.argmax(1).numpy())
                for l in range(1, L + 1):
                    at0[l - 1] += float((s[l] <= 0).float().sum())
                    athi[l - 1] += float((s[l] >= hi).float().sum())
                    if n > 1:
                        step = (s[l] - before[l]).abs()
                        moved[l - 1] = max(moved[l - 1], float(step.max()))
                        mean_moved[l - 1] += float(step.sum())
                    fed[l - 1] += float((s[l] - s1[l]).abs().mean()) * len(c)
            done = n
            units = [len(x) * net.sizes[l] for l in range(1, L + 1)]
            acc = float((np.concatenate(pred) == y).mean())
            rows.append((n, acc, at0 / units, athi / units, moved, mean_moved / units, fed / len(x)))
    head = " | ".join(f"layer {l}: at 0 / at bound / last step max, mean / from feedforward" for l in range(1, L + 1))
    lines = [f"# {args.run}: read after n free steps", "",
             f"{len(x)} {args.split} images, omega {omega}, float32 torch, ideal reads; "
             f"{platform.processor() or platform.machine()}, "
             f"{args.threads} thread(s), {time.perf_counter() - t0:.0f} s. 'last step': the largest and the mean "
             "change of a unit in the last step; 'from feedforward': the mean |state - the one-step (feedforward) "
             "state|.", "",
             f"| steps | {args.split} accuracy | {head} |", "| --- | --- |" + " --- |" * L]
    for n, acc, a0, ah, mv, mm, fd in rows:
        cells = " | ".join(f"{a0[i]:.3f} / {ah[i]:.3f} / {mv[i]:.2g}, {mm[i]:.2g} / {fd[i]:.3f}" for i in range(L))
        lines.append(f"| {n} | {100 * acc:.2f}% | {cells} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
