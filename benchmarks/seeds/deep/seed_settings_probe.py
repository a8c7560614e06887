"""Do the Hopfield-ResNet code's own settings make the ResNet's BP twin learn? (issue 6)

The public code of the seed (BrainSeek-Lab/Scaling-Equilibrium-Propagation-to-Deeper-Neural-Network-Architectures)
standardises Fashion-MNIST pixels, ``(x - 0.2860) / 0.3530``, draws each layer's bias from
U[-0.5 / sqrt(fan_in), +0.5 / sqrt(fan_in)], and clips the global gradient norm at 1.0. Only the last is a
scenario setting here (``train.clip_norm``); this probe adds the other two to the twin's data and initial
weights, in this process only, and trains the twin of ``fmnist_resnet13.yaml`` for one epoch on 12,000 images
for each combination given (``--epochs`` and ``--train-limit`` train longer). One Markdown row per combination on
stdout (and in ``--out``).

Usage: python benchmarks/seeds/deep/seed_settings_probe.py --out FILE.md
           --case NORM,BIAS,CLIP,LOSS,GAIN,LR [--case ...]
  NORM 0/1 (standardised inputs), BIAS the bias bound's numerator (0: zero biases), CLIP the gradient norm
  (0: none), LOSS mse | cross_entropy, GAIN network.init_gain, LR train.lr.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

import numpy as np

import crossbar_sim.bp_twin as bp_twin
from crossbar_sim.config import load_scenario
from crossbar_sim.run import dataset_for
from crossbar_sim.trainer import initial_weights

SCENARIO = Path(__file__).resolve().parent / "fmnist_resnet13.yaml"
MEAN, STD = 0.2860, 0.3530  # the seed code's Fashion-MNIST constants


def with_biases(bound: float):
    """``initial_weights`` plus bias rows drawn as the seed code draws biases (the row is driven at the state
    bound, so the drawn bias is divided by it)."""
    def init(network, gain, rng):
        weights = initial_weights(network, gain, rng)
        draw = np.random.default_rng(7)
        for e, W in zip(network.edges, weights):
            if e.bias and bound > 0:
                a = bound / np.sqrt(W.shape[0] - 1)
                W[-1] = draw.uniform(-a, a, size=W.shape[1]) / network.activation.bound
        return weights
    return init


def run_case(norm: bool, bias: float, clip: float, loss: str, gain: float, lr: float, data, epochs: int = 1,
             train_limit: int = 12000) -> dict:
    sets = [f"data.train_limit={train_limit or 'null'}", f"train.epochs={epochs}", f"network.init_gain={gain}",
            f"ep.loss={loss}",
            f"train.lr={lr}"] + ([f"train.clip_norm={clip}"] if clip > 0 else [])
    sc = load_scenario(SCENARIO, overrides=sets)
    if norm:
        data = dataclasses.replace(data, x_train=((data.x_train - MEAN) / STD).astype(np.float32),
                                   x_test=((data.x_test - MEAN) / STD).astype(np.float32))
    bp_twin.initial_weights = with_biases(bias)
    try:
        return bp_twin.train_bp(sc, data, progress=False)
    finally:
        bp_twin.initial_weights = initial_weights


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", action="append", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-limit", type=int, default=12000, help="training images (0: all)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    limit = args.train_limit or None
    data = dataset_for(load_scenario(SCENARIO, overrides=[f"data.train_limit={limit or 'null'}"]))
    t0 = time.perf_counter()
    lines = ["| standardised inputs | bias bound | clip norm | loss | init gain | lr | test accuracy | train accuracy "
             "| test accuracy per epoch |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for case in args.case:
        n, b, c, loss, g, lr = case.split(",")
        out = run_case(n == "1", float(b), float(c), loss, float(g), float(lr), data, args.epochs, limit)
        per_epoch = ", ".join(f"{100 * h['test_accuracy']:.2f}" for h in out["history"])
        lines.append(f"| {'yes' if n == '1' else 'no'} | {'0' if float(b) == 0 else b + '/sqrt(fan_in)'} "
                     f"| {c if float(c) > 0 else '-'} | {loss} | {g} | {lr} | {100 * out['test_accuracy']:.2f}% "
                     f"| {100 * out['train_accuracy']:.2f}% | {per_epoch} |")
        print(lines[-1], flush=True)
    images = f"{limit:,}" if limit else "all 60,000"
    head = (f"# BP twin of fmnist_resnet13.yaml under the seed code's settings\n\n{args.epochs} epoch(s) on {images} "
            f"training images, full test set; {platform.machine()}, one torch thread, {time.perf_counter() - t0:.0f} "
            f"s in all. Command: python benchmarks/seeds/deep/seed_settings_probe.py --out {args.out} --epochs "
            f"{args.epochs} --train-limit {args.train_limit} " + " ".join(f"--case {c}" for c in args.case) + "\n\n")
    Path(args.out).write_text(head + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
