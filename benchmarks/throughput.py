"""Settle-loop throughput against this machine's own float32 GEMM, in one run.

Prints:
  * float32 GEMM GFLOP/s (NumPy matmul, 2048x2048, all cores) and, for reference, GEMM at the big net's own
    shape (batch 100 x 500 x 500);
  * the settle loop's GFLOP/s on 784-500-500-500-10 at batch 100, with (i) ideal tiles and (ii) every crossbar
    effect on (8-bit DAC and ADC, 256x256 tiles, read noise), each as a % of the GEMM figure;
  * sample-steps/s on 64-100-10 at batch 32 (ideal tiles and crossbar).

FLOPs counted are those of the matrix products the relaxation needs: 2 * batch * rows * cols for every read
(the clamped input's product once per phase, every other product each step, both directions).
Usage: python benchmarks/throughput.py [--repeat N] [--json FILE]
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


def best_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def gemm_gflops(m, k, n, repeat):
    a = np.random.default_rng(0).random((m, k), dtype=np.float32)
    b = np.random.default_rng(1).random((k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    inner = max(1, int(2e9 / (2 * m * k * n)))

    def run():
        for _ in range(inner):
            np.matmul(a, b, out=c)

    return 2 * m * k * n * inner / best_time(run, repeat) / 1e9


def make_engine(sizes, crossbar):
    net = LayeredNetwork(tuple(sizes), make_activation("hard_sigmoid"))
    rng = np.random.default_rng(0)
    w0 = net.init_weights(rng)
    if crossbar:
        model = LinearStep(bits=8, read_noise=0.01)
        per = Periphery(rows=256, cols=256, dac_bits=8, adc_bits=8, adc_range=4.0, w_max=0.5)
    else:
        model, per = Ideal(), Periphery()
    return Engine(net, w0, model, per, "stochastic", rng)


def phase_flops(sizes, batch, steps):
    """The input's product once, then a forward and a backward read of every other matrix each step."""
    n = sizes
    macs_per_step = sum(2 * n[l - 1] * n[l] for l in range(2, len(n)))
    return 2 * batch * (n[0] * n[1] + steps * macs_per_step)


def settle_rate(sizes, batch, steps, crossbar, repeat, dynamics="coordinate"):
    eng = make_engine(sizes, crossbar)
    x = np.random.default_rng(2).random((batch, sizes[0]), dtype=np.float32)
    xq = eng.input_dac(x)
    y = np.zeros((batch, sizes[-1]), np.float32)
    S = np.zeros(batch * eng.state_size(), np.float32)

    def run():
        S[:] = 0.0
        res = eng.settle(xq, y, S, 0.0, steps, dynamics, 0.0, 0.5)
        assert res.steps == steps

    t = best_time(run, repeat)
    return phase_flops(sizes, batch, steps) / t / 1e9, batch * steps / t


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    cores = os.cpu_count()
    from crossbar_sim import blas

    print(f"machine: {platform.machine()}, {cores} cores, numpy {np.__version__}, kernel BLAS: {blas.BACKEND}")
    gemm = gemm_gflops(2048, 2048, 2048, args.repeat)
    gemm_shape = gemm_gflops(100, 500, 500, args.repeat)
    time.sleep(1.0)  # let NumPy's BLAS threads stop spinning before the kernels take the cores
    print(f"float32 GEMM (NumPy, 2048^3):                 {gemm:8.1f} GFLOP/s")
    print(f"float32 GEMM at the net's shape (100x500x500): {gemm_shape:8.1f} GFLOP/s  ({100 * gemm_shape / gemm:.0f}% of 2048^3)")
    big = [784, 500, 500, 500, 10]
    out = {"gemm_gflops": gemm, "gemm_shape_gflops": gemm_shape}
    for label, crossbar in (("ideal tiles", False), ("crossbar (8-bit DAC/ADC, read noise, 256x256 tiles)", True)):
        gf, _ = settle_rate(big, 100, 50, crossbar, args.repeat)
        key = "crossbar" if crossbar else "ideal"
        out[f"big_{key}_gflops"] = gf
        print(f"settle 784-500x3-10, batch 100, {label}: {gf:7.1f} GFLOP/s = {100 * gf / gemm:5.1f}% of GEMM"
              f" ({100 * gf / gemm_shape:.0f}% of same-shape GEMM)")
    for label, crossbar in (("ideal tiles", False), ("crossbar", True)):
        _, rate = settle_rate([64, 100, 10], 32, 200, crossbar, args.repeat)
        out[f"small_{'crossbar' if crossbar else 'ideal'}_sample_steps"] = rate
        print(f"settle 64-100-10, batch 32, {label}: {rate / 1e6:6.2f} million sample-steps/s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
