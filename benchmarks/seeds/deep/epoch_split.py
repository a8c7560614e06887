"""Where a training batch of a convolutional scenario spends its time: convolution, transposed convolution,
periphery, the rest of the relaxation, the EP estimate and the write-back.

Trains ``--batches`` batches of the scenario (crossbar device as configured) on one thread, timing the phases'
relaxations (the settle kernel), the EP estimate arithmetic and the write-back directly. Inside the compiled
relaxation, the share of each convolutional block's reads is modelled: every read is timed alone at the
kernel's batch size, exact and through the scenario's periphery, and multiplied by the number of reads the
phases made (from the samples' steps). "Periphery" is the through-periphery time minus the exact time (DAC'd
inputs, per-tile partial products, read noise, ADC); "rest of the relaxation" is what the model does not
cover (state updates, DAC of the states, dense blocks, the readout). An epoch is extrapolated from the batches
(the real epochs' times are in the runs' history). Prints a table and writes it to ``--out``.

    python benchmarks/seeds/deep/epoch_split.py benchmarks/seeds/deep/fmnist_conv.yaml
        --set hardware.device.model=linear_step --set hardware.device.bits=8 [--batches 20]
"""
from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numba
import numpy as np

from crossbar_sim import blas
from crossbar_sim import conv as CV
from crossbar_sim import ep as EP
from crossbar_sim.config import load_scenario
from crossbar_sim.run import dataset_for
from crossbar_sim.trainer import Trainer


class Clock:
    """Seconds spent in wrapped callables, by label."""

    def __init__(self):
        self.seconds = defaultdict(float)

    def wrap(self, label, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t0
        return timed


def read_seconds(engine, k, Bc, repeats=5):
    """Seconds of one forward and one transposed read of convolutional block ``k`` for ``Bc`` samples, with the
    engine's periphery and exact: {("forward" | "transposed", "periphery" | "exact"): seconds}."""
    e = engine.edges[k]
    g = e.conv
    rows, co = engine.arrays[k].W_view.shape
    Wc = np.ascontiguousarray(engine.arrays[k].W_view)
    WT = np.ascontiguousarray(Wc[: g.patch].T)
    Wk = np.ascontiguousarray(Wc[: g.patch])
    rng = np.random.default_rng(0)
    x = rng.random((Bc, g.C * g.H * g.W)).astype(np.float32)
    y = rng.random((Bc, co * g.pooled)).astype(np.float32)
    n = Bc * g.pixels
    scratch = (np.empty(g.C * g.H * g.W * Bc, np.float32), np.empty(g.patch * n, np.float32),
               np.empty(co * n, np.float32), np.empty(n, np.float32), np.empty(n * max(co, g.patch), np.float32))
    out = np.empty((Bc, co * g.pooled), np.float32)
    arg = np.zeros_like(out)
    back = np.empty((Bc, g.C * g.H * g.W), np.float32)
    exact = engine.per.copy()
    exact[0] = 0.0  # PER_ANALOG
    key, ctr = np.uint64(1), np.uint64(0)
    result = {}
    for label, per in (("periphery", engine.per), ("exact", exact)):
        def fwd():
            CV.conv_read(x, Wc, WT, out, False, *g.args(), arg, engine.periphery.rows, per, key, ctr, 0, Bc,
                         *scratch)

        def bwd():
            CV.conv_transpose_read(y, Wk, back, False, *g.args(), arg, engine.periphery.cols, per, key, ctr, 0, Bc,
                                   *scratch)
        for name, fn in (("forward", fwd), ("transposed", bwd)):
            fn()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            result[(name, label)] = float(np.median(times))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--out", default=str(Path(__file__).parents[2] / "benchmarks" / "results" / "deep" /
                                         "epoch_split.md"))
    ap.add_argument("--note", default="", help="a line to keep with the table (e.g. what else ran on the machine)")
    args = ap.parse_args()
    numba.set_num_threads(1)
    sc = load_scenario(args.scenario, overrides=args.overrides)
    bs = sc.data.batch_size
    data = dataset_for(sc)
    n_train = min(len(data.x_train), args.batches * bs)
    data = replace(data, x_train=data.x_train[:n_train], y_train=data.y_train[:n_train])
    one = replace(data, x_train=data.x_train[:bs], y_train=data.y_train[:bs])
    Trainer(sc, one, sc.hardware.device.build(), progress=False)._train_epoch(1)  # compiles outside the timing
    trainer = Trainer(sc, data, sc.hardware.device.build(), progress=False)
    eng = trainer.engine
    clock = Clock()
    phases = []  # (batch size, PhaseResult) of every phase

    settle = eng.settle

    def timed_settle(xq, *rest):
        t0 = time.perf_counter()
        res = settle(xq, *rest)
        clock.seconds["relaxation"] += time.perf_counter() - t0
        phases.append((xq.shape[0], res))
        return res
    eng.settle = timed_settle
    EP.grad_difference = clock.wrap("EP estimate", EP.grad_difference)
    EP.readout_grad = clock.wrap("EP estimate", EP.readout_grad)
    for a in eng.arrays:
        a.apply = clock.wrap("write-back", a.apply)

    with blas.limit_threads(1):
        t0 = time.perf_counter()
        trainer._train_epoch(1)
        wall = time.perf_counter() - t0
    batches = -(-n_train // bs)

    # the modelled reads inside the relaxation
    sample_steps = sum(r.sample_steps for _, r in phases)
    samples = sum(B for B, _ in phases)
    model = defaultdict(float)
    for k, e in enumerate(eng.network.state_edges):
        if e.conv is None:
            continue
        t = read_seconds(eng, k, bs)
        print(f"block {e.src}->{e.dst}: " + ", ".join(f"{a} {b} {v * 1e3:.2f} ms" for (a, b), v in t.items()))
        pooled = e.conv.pool > 1
        n_fwd = samples if (e.src == 0 or pooled) else 0
        n_fwd += sample_steps if e.src > 0 else 0
        n_bwd = sample_steps if e.src > 0 else 0
        model["convolution"] += n_fwd / bs * t[("forward", "exact")]
        model["transposed convolution"] += n_bwd / bs * t[("transposed", "exact")]
        model["periphery"] += (n_fwd / bs * (t[("forward", "periphery")] - t[("forward", "exact")]) +
                               n_bwd / bs * (t[("transposed", "periphery")] - t[("transposed", "exact")]))
    rest = clock.seconds["relaxation"] - sum(model.values())
    rows = [("convolution (im2col + product + pooling), exact", model["convolution"]),
            ("transposed convolution (unpooling + product + col2im), exact", model["transposed convolution"]),
            ("periphery of both (DAC'd inputs, tiles, read noise, ADC)", model["periphery"]),
            ("rest of the relaxation (state updates, DAC, dense blocks, readout)", rest),
            ("EP estimate (phase differences of the local products)", clock.seconds["EP estimate"]),
            ("write-back (pulse counts, device response)", clock.seconds["write-back"]),
            ("other (data, bookkeeping, diagnostics)", wall - clock.seconds["relaxation"] - clock.seconds["EP estimate"]
             - clock.seconds["write-back"])]
    per_epoch = wall / batches * (-(-60000 // bs))
    lines = [f"# {args.scenario} {' '.join(args.overrides)}",
             f"# {platform.processor() or platform.machine()}, 1 thread; {batches} batches of {bs}; "
             f"device {sc.hardware.device.model}; longest free phase "
             f"{trainer.counters.free_steps / max(1, trainer.counters.free_phases):.1f} steps on average"
             + (f"; {args.note}" if args.note else ""),
             "| part | seconds per batch | share |", "|---|---|---|"]
    lines += [f"| {name} | {s / batches:.3f} | {s / wall:.0%} |" for name, s in rows]
    lines += [f"| total | {wall / batches:.3f} | 100% |", "",
              f"One thread: {per_epoch:.0f} s for 60,000 training images at this rate (test evaluation not included)."]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
