"""Settle-loop throughput against this machine's own float32 GEMM, in one run.

Prints:
  * float32 GEMM GFLOP/s (NumPy matmul, 2048x2048, all cores) and, for reference, GEMM at the big net's own
    shape (batch 100 x 500 x 500);
  * the settle loop's GFLOP/s on 784-500-500-500-10 at batch 100, with (i) ideal tiles and (ii) every crossbar
    effect on (8-bit DAC and ADC, read noise), with one tile per matrix and with 256x256 tiles (products split
    at tile boundaries, partial sums added after the ADC), each as a % of the GEMM figure;
  * sample-steps/s on 64-100-10 at batch 32 (ideal tiles and crossbar).

FLOPs counted are those of the matrix products the relaxation needs: 2 * batch * rows * cols for every read
(the clamped input's product once per phase, every other product each step, both directions).
Usage: python benchmarks/throughput.py [--seconds S] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from crossbar_sim.engine import Engine
from crossbar_sim.tiles import Periphery
from device_models.ideal import Ideal
from device_models.linear_step import LinearStep
from networks.activations import make_activation
from networks.layered import LayeredNetwork


def gemm_call(m, k, n):
    a = np.random.default_rng(0).random((m, k), dtype=np.float32)
    b = np.random.default_rng(1).random((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    inner = max(1, int(2e8 / (2 * m * k * n)))

    def run():
        for _ in range(inner):
            np.matmul(a, b, out=c)

    return run, 2 * m * k * n * inner


def fastest(calls: dict, seconds: float) -> dict:
    """Fastest time of each call, timing them in turn (round robin) for about ``seconds`` in all, so that all
    of them see the same machine: on a shared virtual machine the speed drifts by tens of percent."""
    for fn in calls.values():
        fn()
    best = {name: float("inf") for name in calls}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for name, fn in calls.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def make_engine(sizes, crossbar, tile=256):
    net = LayeredNetwork(tuple(sizes), make_activation("hard_sigmoid"))
    rng = np.random.default_rng(0)
    w0 = net.init_weights(rng)
    if crossbar:
        model = LinearStep(bits=8, read_noise=0.01)
        per = Periphery(rows=tile, cols=tile, dac_bits=8, adc_bits=8, adc_range=4.0, w_max=0.5)
    else:
        model, per = Ideal(), Periphery()
    return Engine(net, w0, model, per, "stochastic", rng)


def phase_flops(sizes, batch, steps):
    """The input's product once, then a forward and a backward read of every other matrix each step. Each net's configurations are timed in turn (round robin) and the
fastest call of each is kept."""
    n = sizes
    macs_per_step = sum(2 * n[l - 1] * n[l] for l in range(2, len(n)))
    return 2 * batch * (n[0] * n[1] + steps * macs_per_step)


def settle_call(sizes, batch, steps, crossbar, tile=256, dynamics="coordinate"):
    eng = make_engine(sizes, crossbar, tile)
    x = np.random.default_rng(2).random((batch, sizes[0]), dtype=np.float32)
    xq = eng.input_dac(x)
    y = np.zeros((batch, sizes[-1]), np.float32)
    S = np.zeros(batch * eng.state_size(), np.float32)

    def run():
        S[:] = 0.0
        res = eng.settle(xq, y, S, 0.0, steps, dynamics, 0.0, 0.5)
        assert res.steps == steps

    return run


BIG = [784, 500, 500, 500, 10]
SMALL = [64, 100, 10]
SETTLES = {  # name: (label, sizes, batch, steps, crossbar, tile)
    "big_ideal": ("784-500x3-10, batch 100, ideal tiles", BIG, 100, 50, False, 256),
    "big_crossbar_1tile": ("784-500x3-10, batch 100, 8-bit DAC/ADC, read noise, one tile per matrix", BIG, 100, 50, True, 1024),
    "big_crossbar": ("784-500x3-10, batch 100, 8-bit DAC/ADC, read noise, 256x256 tiles", BIG, 100, 50, True, 256),
    "small_ideal": ("64-100-10, batch 32, ideal tiles", SMALL, 32, 200, False, 256),
    "small_crossbar": ("64-100-10, batch 32, 8-bit DAC/ADC, read noise", SMALL, 32, 200, True, 256),
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0, help="timing budget of the settle loops")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    from crossbar_sim import blas

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, kernel BLAS: {blas.BACKEND}")
    gemms = {"gemm": gemm_call(2048, 2048, 2048), "gemm_shape": gemm_call(100, 500, 500)}
    t = fastest({k: fn for k, (fn, _) in gemms.items()}, 5.0)
    out = {k: gemms[k][1] / t[k] / 1e9 for k in gemms}
    time.sleep(1.0)  # let NumPy's BLAS threads stop spinning before the kernels take the cores
    calls = {k: settle_call(*v[1:]) for k, v in SETTLES.items()}
    # The two nets are timed in separate rounds: the big net's weights would evict the small net's from cache.
    t = fastest({k: c for k, c in calls.items() if k.startswith("big")}, 0.6 * args.seconds)
    t.update(fastest({k: c for k, c in calls.items() if k.startswith("small")}, 0.4 * args.seconds))
    gemm, gemm_shape = out["gemm"], out["gemm_shape"]
    print(f"float32 GEMM (NumPy, 2048^3, all cores):       {gemm:7.1f} GFLOP/s")
    print(f"float32 GEMM at the net's shape (100x500x500): {gemm_shape:7.1f} GFLOP/s ({100 * gemm_shape / gemm:.0f}% of 2048^3)")
    for key, (label, sizes, batch, steps, _, _) in SETTLES.items():
        if sizes is BIG:
            gf = phase_flops(sizes, batch, steps) / t[key] / 1e9
            out[key + "_gflops"] = gf
            print(f"settle {label}: {gf:6.1f} GFLOP/s = {100 * gf / gemm:4.1f}% of GEMM "
                  f"({100 * gf / gemm_shape:.0f}% of same-shape GEMM)")
        else:
            rate = batch * steps / t[key]
            out[key + "_sample_steps"] = rate
            print(f"settle {label}: {rate / 1e6:5.2f} million sample-steps/s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
