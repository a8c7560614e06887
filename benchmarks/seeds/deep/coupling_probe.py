"""Is a run's free equilibrium a minimum of its energy? The coupling's spectrum over the whole state space and
on the units each sample leaves free.

The energy is ``1/2 s^T (I - C) s`` less its linear terms, in the box of the activation. At a settled state the
units strictly inside the box (free units, mask ``D``) see the Hessian ``I - D C D``: the state is a strict
minimum, and the relaxation contracts to it, only while the largest eigenvalue of ``D C D`` stays below 1. The
coupling's largest eigenvalue over every unit bounds it from above (interlacing). For each run (a directory
with ``config.yaml`` and ``checkpoint.pkl``: its weights after the last checkpoint; or a scenario file: its
initial weights), prints the whole coupling's extreme eigenvalues and, for ``--batch`` training images after the
run's free phase, the share of free units and the largest eigenvalue of each sample's ``D C D``; and the drive
each layer's biases add (the bound times their mean). Networks
without max-pooling blocks only (a pooling coupling is not linear). Writes a Markdown table to ``--out``.

    python benchmarks/seeds/deep/coupling_probe.py benchmarks/seeds/deep/fmnist_resnet13_crossbar.yaml \\
        benchmarks/results/deep/probes_s13/ideal_seed2 --set hardware.device.model=ideal --out coupling.md
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numba
import numpy as np

from crossbar_sim.config import load_scenario
from crossbar_sim.run import dataset_for, load_run
from crossbar_sim.trainer import Trainer


def probe(target: str, overrides: list[str], batch: int) -> str:
    """One Markdown row for a run directory or a scenario file."""
    path = Path(target)
    if path.is_file():
        sc = load_scenario(path, overrides)
        trainer = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
        where = "initial weights"
    else:
        trainer = load_run(path, overrides=overrides)
        sc = trainer.scenario
        where = trainer.trained_to()
    eng, net = trainer.engine, trainer.engine.network
    weights = [w.astype(np.float64) for w in eng.weights()]
    hi, lo = net.coupling_extremes(weights)
    data = trainer.data
    x, y = data.x_train[:batch], data.targets(data.y_train[:batch])
    S = np.zeros(batch * eng.state_size(), np.float32)
    ep = sc.ep
    res = eng.settle(eng.input_dac(x), y, S, 0.0, ep.free_steps, ep.dynamics, ep.tol, ep.eps, ep.aux_weight,
                     ep.omega)
    states = np.concatenate(eng.layers(S, batch), axis=1)
    rows = [net.free_coupling_max(weights, s.astype(np.float64)) for s in states]
    share = np.array([r[0] for r in rows])
    top = np.array([r[1] for r in rows])
    bound = net.activation.bound
    bias = " ".join(f"{bound * W[-1].mean():+.2g}" for e, W in zip(net.state_edges, weights) if e.bias)
    return (f"| {target} | {where} | {hi:.3f} | {lo:.3f} | {res.steps} | {share.mean():.2f} | "
            f"{np.median(top):.3f} | {top.max():.3f} | {(top >= 1).mean():.2f} | {bias} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="+", help="run directories or scenario files")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    start = time.perf_counter()
    rows = []
    for target in args.targets:
        rows.append(probe(target, args.overrides if Path(target).is_file() else [], args.batch))
        print(rows[-1], flush=True)
    head = [f"# The coupling's spectrum at runs' weights ({' '.join(args.overrides)} on scenario files)",
            f"{platform.machine()}, {numba.get_num_threads()} threads, {time.perf_counter() - start:.0f} s; "
            f"the first {args.batch} training images, each run's own free phase from zero states. 'C': the "
            "states' coupling (the energy's Hessian is I - C); 'free': units strictly inside the activation's "
            "box; 'D C D': the coupling on one sample's free units (its state is a strict minimum only while "
            "the largest eigenvalue is below 1). 'bias drive': the bound times each state layer's mean bias, "
            "from layer 1 up.", "",
            "| run | weights | largest eigenvalue of C | smallest | free steps taken | free units | "
            "largest of D C D, median | max | share of samples >= 1 | bias drive per layer |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    Path(args.out).write_text("\n".join(head + rows) + "\n")


if __name__ == "__main__":
    main()
