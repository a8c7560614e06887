"""Whether a scenario's network settles at its initial weights, over a range of ``network.init_gain``.

For each gain, runs the free phase on ``--batch`` training samples in chunks of steps (every step run, tol 0)
and reports per state layer the mean activity and the fractions of units at 0 and at the activation's bound,
and, over each chunk, the largest state change, the fraction of units still moving, the mean energy change and
how often a step raised a sample's energy (the block-coordinate dynamics never should): a phase that settles
shows the first three falling towards 0. Writes a Markdown table to ``--out``.

    python benchmarks/seeds/deep/relax_probe.py benchmarks/seeds/deep/fmnist_resnet13.yaml \\
        --gains 0.3 0.4 0.45 0.5 0.6 --out benchmarks/results/deep/relax_resnet13.md
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

CHUNKS = (10, 20, 30, 60, 120)  # steps run between two reports: 10, 30, 60, 120, 240 steps in all


def chunks(max_steps: int) -> list[int]:
    """CHUNKS, then chunks doubling the steps run so far until at least ``max_steps`` are run."""
    out = list(CHUNKS)
    while sum(out) < max_steps:
        out.append(sum(out))
    return out


def probe(scenario: str, overrides: list[str], gain: float, batch: int, max_steps: int = 240) -> list[str]:
    """Table rows for one gain: one per chunk of steps."""
    sc = load_scenario(scenario, overrides + [f"network.init_gain={gain}"])
    data = dataset_for(sc)
    eng = Trainer(sc, data, sc.hardware.device.build(), progress=False).engine
    x, y = data.x_train[:batch], data.targets(data.y_train[:batch])
    xq = eng.input_dac(x)
    S = np.zeros(batch * eng.state_size(), np.float32)
    bound = eng.network.activation.bound
    rows, done = [], 0
    weights, net = eng.weights(), eng.network
    energy = net.energy(xq, eng.layers(S, batch), weights)
    for chunk in chunks(max_steps):
        before, e_before, rises = S.copy(), energy, 0
        for _ in range(chunk):  # one step at a time, to follow the energy
            eng.settle(xq, y, S, 0.0, 1, sc.ep.dynamics, 0.0, sc.ep.eps, omega=sc.ep.omega)
            e = net.energy(xq, eng.layers(S, batch), weights)
            rises += int((e > energy + 1e-9 * np.abs(energy)).sum())
            energy = e
        done += chunk
        layers = eng.layers(S, batch)
        change = np.abs(S - before)
        rows.append(f"| {gain:g} | {done} | {change.max():.1e} | {(change > 1e-3 * bound).mean():.1e} | "
                    f"{(energy - e_before).mean():.3g} | {rises} | "
                    + " ".join(f"{s.mean():.2g}" for s in layers) + " | "
                    + " ".join(f"{(s <= 0).mean():.2f}" for s in layers) + " | "
                    + " ".join(f"{(s >= bound).mean():.2f}" for s in layers) + " |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("--gains", type=float, nargs="+", required=True)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--max-steps", type=int, default=240, help="run on, doubling the steps, to at least this many")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    start = time.perf_counter()
    rows = [r for g in args.gains for r in probe(args.scenario, args.overrides, g, args.batch, args.max_steps)]
    head = [f"# Free phase at the initial weights: {args.scenario} {' '.join(args.overrides)}",
            f"{args.batch} training samples, every step run (tol 0); {platform.machine()}, {numba.get_num_threads()} "
            f"threads, {time.perf_counter() - start:.0f} s. Per state layer from the input up: mean state, fraction "
            "at 0, fraction at the bound; 'change' is the largest state change over the steps since the row above, "
            "'moving' the fraction of units that changed by more than 1e-3 of the bound over them; 'dE' the mean "
            "change of the per-sample energy over them, 'rises' how many (sample, step) pairs raised it.",
            "", "| init gain | steps | change | moving | dE | rises | mean per layer | at 0 | at bound |",
            "|---|---|---|---|---|---|---|---|---|"]
    Path(args.out).write_text("\n".join(head + rows) + "\n")


if __name__ == "__main__":
    main()
