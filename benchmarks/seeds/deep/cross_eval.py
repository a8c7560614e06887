"""Two trained weight sets, each scored in both models: the energy model's free equilibrium and the feedforward pass.

An EP run trains the energy model (each layer pulled by the layers below and above it, its prediction the free
phase's equilibrium); its backprop twin trains the same blocks as a feedforward net (:mod:`crossbar_sim.bp_twin`).
Where EP lags its twin, this asks whether the two models compute the same function with the same weights: the EP
run's weights (its checkpoint, as :func:`crossbar_sim.run.load_run` loads it) run feedforward, and the twin's
weights (``weights.npz`` of ``bp_twin.py --out``) written into the EP run's network, on ideal devices, and relaxed
with its free phase (at the run's ``ep.free_steps`` cap, or at each ``--steps``).

    python benchmarks/seeds/deep/cross_eval.py benchmarks/results/deep/resnet13_aux_10ep \\
        benchmarks/results/deep/resnet13_aux_bp_10ep --out benchmarks/results/deep/cross_eval_aux.md

The first table gives each block's largest singular value in both weight sets against the run's
``train.spectral_cap`` (``--blocks-only`` stops there, without scoring). The last describes the state layers each
way on the first ``--states`` test images (default 500): per layer the mean state, and the percentages of units at
the activation's bound and at 0.

The EP run must be on ideal devices (its weights are its floating-point weights); its score in the energy model is
computed again, and matches its history's at an epoch's end.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numba
import numpy as np

from crossbar_sim.bp_twin import FeedForward, _outputs, _torch
from crossbar_sim.run import load_run
from crossbar_sim.trainer import Trainer, top_singular


def twin_weights(twin: Path, trainer: Trainer) -> list[np.ndarray]:
    """The twin's trained blocks in edge order, checked against the run's network."""
    with np.load(twin / "weights.npz") as f:
        weights = [f[f"arr_{k}"] for k in range(len(f.files))]
    shapes = [a.W.shape for a in trainer.engine.arrays]
    if [W.shape for W in weights] != shapes:
        raise SystemExit(f"{twin}: its blocks {[W.shape for W in weights]} are not the run's network {shapes}")
    return weights


def write_weights(trainer: Trainer, weights) -> None:
    """Set the trainer's ideal arrays to ``weights`` (masked connections stay 0)."""
    for a, W in zip(trainer.engine.arrays, weights, strict=True):
        a.load_state({"W": W * (1 if a.mask is None else a.mask), "pulses_total": 0})


def relaxed_score(trainer: Trainer, weights, x, y) -> tuple[float, float, float]:
    """Accuracy of the free equilibrium with ``weights`` written into the trainer's ideal arrays (at its
    scenario's ``ep.free_steps`` cap); with the mean steps run and the seconds taken."""
    write_weights(trainer, weights)
    t0 = time.perf_counter()
    score = trainer.evaluate(x, y)
    return score, trainer.eval_mean_steps, time.perf_counter() - t0


def feedforward(trainer: Trainer, weights) -> FeedForward:
    return FeedForward(trainer.network, [np.asarray(W, np.float32) for W in weights])


def feedforward_score(trainer: Trainer, weights, x, y) -> float:
    torch = _torch()
    return float((_outputs(feedforward(trainer, weights), torch.from_numpy(np.asarray(x, np.float32))).argmax(1)
                  == y).mean())


def block_table(trainer: Trainer, ep_weights, bp_weights) -> list[str]:
    """Per block: its edge and kind, shape, the largest singular value of its weight rows in each weight set, and
    the run's ``train.spectral_cap`` on it (inner blocks only, with each value as a percentage of it)."""
    inner, caps = len(trainer.network.state_edges), trainer.spectral_caps
    lines = ["| block | edge | kind | shape | EP run | BP twin | cap |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for k, (e, We, Wb) in enumerate(zip(trainer.engine.edges, ep_weights, bp_weights, strict=True)):
        kind = ("readout" if k == inner else "aux readout") if k >= inner else ("block" if e.adjacent else "skip")
        cap = caps[k] if caps is not None and k < inner else None
        sv = []
        for W in (We, Wb):
            s = top_singular(W[: len(W) - e.bias])[0]
            sv.append(f"{s:.3f}" + ("" if cap is None else f" ({100 * s / cap:.1f}%)"))
        lines.append(f"| {k} | {e.src} -> {e.dst} | {kind} | {We.shape[0]} x {We.shape[1]} | {sv[0]} | {sv[1]} | "
                     f"{'' if cap is None else f'{cap:.3f}'} |")
    return lines


def layer_summary(layers, hi: float) -> str:
    """Per layer: mean state / % of units at the bound ``hi`` / % at 0."""
    return " | ".join(f"{s.mean():.2g} / {100 * (s >= hi).mean():.0f} / {100 * (s <= 0).mean():.0f}"
                      for s in (np.asarray(s, np.float64) for s in layers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="an EP run directory on ideal devices (config.yaml and checkpoint.pkl)")
    ap.add_argument("twin", help="its BP twin's directory (weights.npz)")
    ap.add_argument("--steps", default=None, help="free-phase caps, comma-separated (default: the run's)")
    ap.add_argument("--part", default="crossbar", choices=["crossbar", "ideal"],
                    help="which part of the run (a run on non-ideal devices has an ideal twin part)")
    ap.add_argument("--limit", type=int, default=None, help="the first N test samples only")
    ap.add_argument("--states", type=int, default=500, help="test images for the state-layer table (0: none)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the feedforward pass")
    ap.add_argument("--blocks-only", action="store_true",
                    help="only the table of the blocks' largest singular values (no scoring)")
    ap.add_argument("--out", default=None, help="also write the tables here (markdown)")
    args = ap.parse_args()
    run, twin = Path(args.run), Path(args.twin)
    trainer = load_run(run, args.part)
    if not trainer.engine.model.ideal:
        raise SystemExit(f"{run}: not on ideal devices; its weights are conductances, not the trained floats")
    _torch().set_num_threads(args.threads)
    ep_weights = trainer.engine.weights()
    bp_weights = twin_weights(twin, trainer)
    lines = [f"# {run} ({trainer.trained_to()}) and its twin {twin}: each weight set in both models", ""]

    def row(text: str) -> None:
        lines.append(text)
        print(text, flush=True)

    print("\n".join(lines), flush=True)
    for text in ["Each block's largest singular value (its weight rows), against the run's spectral cap", "",
                 *block_table(trainer, ep_weights, bp_weights)]:
        row(text)
    if not args.blocks_only:
        scores(args, trainer, run, ep_weights, bp_weights, row)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"written: {args.out}")


def scores(args, trainer: Trainer, run: Path, ep_weights, bp_weights, row) -> None:
    """The score table (each weight set in each model) and, unless ``--states 0``, the state-layer table."""
    sc, data = trainer.scenario, trainer.data
    steps = [int(s) for s in args.steps.split(",")] if args.steps else [sc.ep.free_steps]
    x, y = data.x_test[: args.limit], np.asarray(data.y_test[: args.limit])
    for text in ["", f"{len(x)} test samples; the energy model's free phase: {sc.ep.dynamics} dynamics, omega "
                 f"{sc.ep.omega}, tol {sc.ep.tol:g}; {platform.machine()}, {numba.get_num_threads()} numba threads",
                 "", "| weights | model | test accuracy | mean free steps | seconds |",
                 "| --- | --- | --- | --- | --- |"]:
        row(text)
    for name, weights in (("EP run", ep_weights), ("BP twin", bp_weights)):
        row(f"| {name} | feedforward | {feedforward_score(trainer, weights, x, y):.4f} | | |")
        for cap in steps:
            capped = load_run(run, args.part, [f"ep.free_steps={cap}"])
            score, mean_steps, seconds = relaxed_score(capped, weights, x, y)
            row(f"| {name} | energy, {cap} free steps | {score:.4f} | {mean_steps:.1f} | {seconds:.0f} |")
    if args.states:
        torch, hi, xs = _torch(), trainer.network.activation.bound, data.x_test[: args.states]
        L = trainer.network.n_state_layers
        row("")
        row(f"State layers on the first {len(xs)} test images: mean state / % of units at {hi:g} / % at 0; the "
            f"energy model at the run's {sc.ep.free_steps}-step cap")
        row("")
        row("| weights | model | " + " | ".join(f"layer {l}" for l in range(1, L + 1)) + " |")
        row("| --- | --- | " + " | ".join("---" for _ in range(L)) + " |")
        for name, weights in (("EP run", ep_weights), ("BP twin", bp_weights)):
            with torch.no_grad():
                ff = [s.numpy() for s in feedforward(trainer, weights).layers(torch.from_numpy(
                    np.asarray(xs, np.float32)))]
            row(f"| {name} | feedforward | {layer_summary(ff, hi)} |")
            write_weights(trainer, weights)
            row(f"| {name} | energy | {layer_summary(trainer.free_layers(xs), hi)} |")


if __name__ == "__main__":
    main()
