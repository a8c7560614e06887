"""Do the faster dynamics reach the paper's equilibria? Gammell et al. relax with Euler steps (eps 0.5, 1000
free steps for 784-100x5-10, 500 for 784-500x3-10); our scenarios use exact block-coordinate updates with far
fewer steps. For each network, this trains one short epoch (so that the weights are not the random
initial ones), then relaxes the same test batch both ways, free and nudged, and prints the energies, the state
difference, and the steps each dynamics used.

Usage: python benchmarks/seeds/gammell/equilibria.py [--out benchmarks/results/gammell/equilibria.txt]
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from crossbar_sim import blas
from crossbar_sim.config import load_scenario
from crossbar_sim.run import dataset_for
from crossbar_sim.trainer import Trainer

HERE = Path(__file__).resolve().parent
CASES = [  # (scenario, p, Euler free steps of the paper)
    ("mnist_784_100x5_10.yaml", 0.0, 1000),
    ("mnist_784_100x5_10.yaml", 0.4, 1000),
    ("mnist_784_500x3_10.yaml", 0.0, 500),
    ("mnist_784_500x3_10.yaml", 0.1, 500),
]


def relax(engine, x, y, beta, dynamics, steps, tol, S0=None):
    S = np.zeros(len(x) * engine.state_size(), np.float32) if S0 is None else S0.copy()
    start = time.perf_counter()
    res = engine.settle(x, y, S, beta, steps, dynamics, tol, 0.5)
    return S, res, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-limit", type=int, default=2000)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--out", default=str(HERE.parents[1] / "results" / "gammell" / "equilibria.txt"))
    args = p.parse_args()
    lines = [f"machine: {platform.machine()}; one epoch on {args.train_limit} samples, then a test batch of "
             f"{args.batch}; states start at 0 (the nudged phase at each run's own free state); energies are batch "
             "means; differences are to the Euler run",
             "| network | phase | dynamics | steps used | energy | largest change in the last step | "
             "mean abs state difference | max abs state difference | time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, p_rewire, euler_steps in CASES:
        sc = load_scenario(HERE / name, [f"network.p={p_rewire}", "network.kind=small_world", "train.epochs=1",
                                         f"data.train_limit={args.train_limit}"])
        data = dataset_for(sc)
        trainer = Trainer(sc, data, sc.hardware.device.build(), progress=False)
        trainer.fit()
        eng, net = trainer.engine, trainer.network
        x = data.x_test[: args.batch].astype(np.float32)
        y = data.targets(data.y_test[: args.batch])
        label = f"{'-'.join(map(str, net.sizes))}, p = {p_rewire}"
        runs = {"euler": (euler_steps, 0.0), "coordinate": (None, sc.ep.tol),
                "coordinate, long": (euler_steps, 0.0)}
        start_states = {k: None for k in runs}
        with blas.limit_threads(1):
            for phase, beta in (("free", 0.0), ("nudged", sc.ep.beta)):
                ref = None
                for dyn, (steps, tol) in runs.items():
                    steps = steps or (sc.ep.free_steps if beta == 0 else sc.ep.nudge_steps)
                    S, res, t = relax(eng, x, y, beta, dyn.split(",")[0], steps, tol, start_states[dyn])
                    start_states[dyn] = S
                    ref = S if ref is None else ref
                    E = net.energy(x, eng.layers(S, len(x)), eng.weights()).mean()
                    d = np.abs(S - ref)
                    lines.append(f"| {label} | {phase} | {dyn} | {res.steps} of {steps} | {E:.4f} | {res.delta:.1e} | "
                                 f"{d.mean():.1e} | {d.max():.1e} | {t:.2f} s |")
                    print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
