"""How much of the input's class each state layer carries, at a scenario's initial weights: a linear probe.

Runs the free phase (``--steps`` coordinate steps, the scenario's ``ep.omega``, tol 0) on ``--train`` training
and ``--test`` test samples, fits a ridge classifier (one-hot targets, closed form in the samples' dual) to
each state layer's settled state, and reports its test accuracy, next to the same probe on the layers of the
feedforward pass (the BP twin's forward: each layer the clipped sum of its blocks from below, no feedback).
A deep network whose top layer probes at chance has lost the input on the way up, whatever its readout
learns. Also reports each layer's mean state and fraction at the bound, and the largest state change over
the last tenth of the steps (whether the phase settled).

    python benchmarks/seeds/deep/layer_probe.py benchmarks/seeds/deep/fmnist_resnet13.yaml \\
        --set network.init_gain=0.3 --set network.skip_gain=2 --out benchmarks/results/deep/probes_s12/layers.md
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


def ridge_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray,
                   classes: int, lam: float = 1e-2) -> float:
    """Test accuracy of a ridge classifier on standardised features, solved in the samples' dual (the
    features may outnumber the samples); ``lam`` relative to the kernel's mean diagonal."""
    mu, sd = train.mean(0), train.std(0) + 1e-6
    a, b = (train - mu) / sd, (test - mu) / sd
    K = a @ a.T
    K[np.diag_indices_from(K)] += lam * np.trace(K) / len(K)
    T = np.eye(classes)[y_train] - 1.0 / classes
    alpha = np.linalg.solve(K, T)
    return float(((b @ (a.T @ alpha)).argmax(1) == y_test).mean())


def free_states(eng, sc, x: np.ndarray, steps: int) -> tuple[list[np.ndarray], float]:
    """The free phase's layers after ``steps`` steps, and the largest change over the last tenth."""
    xq = eng.input_dac(x)
    y0 = np.zeros((len(x), eng.network.sizes[-1]), np.float32)
    S = np.zeros(len(x) * eng.state_size(), np.float32)
    head = steps - max(1, steps // 10)
    eng.settle(xq, y0, S, 0.0, head, sc.ep.dynamics, 0.0, sc.ep.eps, omega=sc.ep.omega)
    before = S.copy()
    eng.settle(xq, y0, S, 0.0, steps - head, sc.ep.dynamics, 0.0, sc.ep.eps, omega=sc.ep.omega)
    return [s.reshape(len(x), -1).astype(np.float64) for s in eng.layers(S, len(x))], float(np.abs(S - before).max())


def feedforward_states(eng, x: np.ndarray) -> list[np.ndarray]:
    """Each state layer as the clipped sum of its blocks from below (the BP twin's forward, float64)."""
    import torch

    from crossbar_sim.bp_twin import FeedForward
    model = FeedForward(eng.network, [np.asarray(W, np.float64) for W in eng.weights()])
    with torch.no_grad():
        layers = model.layers(torch.from_numpy(np.asarray(x, np.float32)))
    return [s.reshape(len(x), -1).double().numpy() for s in layers]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--batch", type=int, default=250, help="samples relaxed together")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    t0 = time.perf_counter()
    sc = load_scenario(args.scenario, args.overrides)
    data = dataset_for(sc)
    eng = Trainer(sc, data, sc.hardware.device.build(), progress=False).engine
    bound = eng.network.activation.bound
    sets, change = {}, 0.0
    for name, x, n in (("train", data.x_train, args.train), ("test", data.x_test, args.test)):
        parts = []
        for i in range(0, n, args.batch):
            layers, c = free_states(eng, sc, x[i:min(n, i + args.batch)], args.steps)
            parts.append(layers)
            change = max(change, c)
        sets[name] = [np.concatenate(p) for p in zip(*parts)]
        sets["ff_" + name] = feedforward_states(eng, x[:n])
    y_tr, y_te = data.y_train[: args.train], data.y_test[: args.test]
    classes = eng.network.sizes[-1]
    lines = [f"# Linear probe of each state layer at the initial weights: {args.scenario} {' '.join(args.overrides)}",
             "",
             f"Free phase of {args.steps} steps (omega {sc.ep.omega:g}, tol 0): largest state change over the last "
             f"tenth {change:.2g}. Ridge probe fitted on {args.train} training samples, scored on the first "
             f"{args.test} test samples; 'feedforward' is the same probe on the BP twin's forward pass at the same "
             f"weights. {platform.machine()}, {numba.get_num_threads()} threads, {time.perf_counter() - t0:.0f} s.",
             "",
             "| layer | units | equilibrium: probe accuracy | mean state | at bound "
             "| feedforward: probe accuracy | mean state | at bound |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines.append(f"| input | {data.x_train.shape[1]} | "
                 f"{ridge_accuracy(data.x_train[: args.train], y_tr, data.x_test[: args.test], y_te, classes):.1%} | "
                 "| | | | |")
    for i, (s_tr, s_te, f_tr, f_te) in enumerate(zip(sets["train"], sets["test"], sets["ff_train"], sets["ff_test"])):
        lines.append(f"| {i + 1} | {s_tr.shape[1]} | {ridge_accuracy(s_tr, y_tr, s_te, y_te, classes):.1%} | "
                     f"{s_te.mean():.3g} | {(s_te >= bound).mean():.2f} | "
                     f"{ridge_accuracy(f_tr, y_tr, f_te, y_te, classes):.1%} | {f_te.mean():.3g} | "
                     f"{(f_te >= bound).mean():.2f} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
