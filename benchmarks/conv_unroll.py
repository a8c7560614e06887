"""What unrolling a convolution onto crossbar tiles costs next to the tile reads themselves.

For each layer shape: im2col (gathering every output pixel's patch), the read of the unrolled kernel (one
tile read per output pixel: exact float product, and through an 8-bit DAC/ADC periphery with read noise and
256x256 tiles), and, for the feedback, the transposed read and col2im (adding the patches back). One thread,
the settle loop's setting per chunk of a batch. The unrolling share is the part of a convolution's time that is
not the tile read itself. Prints a table and writes it to
``benchmarks/results/conv_unroll.txt``.

    python benchmarks/conv_unroll.py [--batch 16] [--repeats 20] [--note TEXT]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numba
import numpy as np

from crossbar_sim import blas
from crossbar_sim import conv as CV
from crossbar_sim import kernels as K
from crossbar_sim.conv import ConvGeometry

LAYERS = [  # (name, geometry, output channels)
    ("conv net conv1 1->32 5x5, 28x28, 2x2 max-pool", ConvGeometry(1, 28, 28, 5, 1, 0, 2), 32),
    ("conv net conv2 32->64 5x5, 12x12, 2x2 max-pool", ConvGeometry(32, 12, 12, 5, 1, 0, 2), 64),
    ("ResNet p->a 16->16 3x3 pad 1, 28x28", ConvGeometry(16, 28, 28, 3, 1, 1), 16),
    ("ResNet a->b 64->64 3x3 stride 2, 14x14", ConvGeometry(64, 14, 14, 3, 2, 1), 64),
    ("ResNet skip 32->64 1x1 stride 2, 14x14", ConvGeometry(32, 14, 14, 1, 2, 0), 64),
]


def periphery(analog: bool) -> np.ndarray:
    per = np.zeros(K.N_PER)
    per[K.PER_X_MAX] = 1.0
    per[K.PER_TILE_ROWS] = per[K.PER_TILE_COLS] = 256
    if analog:
        per[K.PER_ANALOG] = 1.0
        per[K.PER_ADC_STEPS] = 255
        per[K.PER_ADC_RANGE] = 4.0
        per[K.PER_READ_SIGMA] = 0.01
    return per


def best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def measure(g: ConvGeometry, co: int, B: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.random((B, g.C * g.H * g.W)).astype(np.float32)
    y = rng.random((B, co * g.pooled)).astype(np.float32)
    Wc = (rng.normal(0, 0.05, (g.patch, co))).astype(np.float32)
    WT = np.ascontiguousarray(Wc.T)
    n = B * g.pixels
    img = np.empty((g.C * g.H * g.W, B), np.float32)
    cols = np.empty((g.patch, n), np.float32)
    pix = np.empty((co, n), np.float32)
    flat = img.reshape(-1), cols.reshape(-1), pix.reshape(-1)  # the reads take flat scratch
    scale, tmp = np.empty(n, np.float32), np.empty(n * max(co, g.patch), np.float32)
    out = np.empty((B, co * g.pooled), np.float32)
    arg = np.zeros_like(out)  # the pooling winners
    back = np.empty((B, g.C * g.H * g.W), np.float32)
    key, ctr = np.uint64(1), np.uint64(0)
    no_bias = np.empty(0, np.float32)
    CV.sample_minor(x, img)
    r = {"im2col": best(lambda: CV.im2col(img, *g.args()[:8], cols), repeats)}
    for label, analog in (("exact", False), ("8-bit", True)):
        per = periphery(analog)
        r[f"read {label}"] = best(lambda: CV.read_columns(WT, cols, g.patch, no_bias, pix, 256, per, key, ctr, 0,
                                                          g.pixels, B, scale, tmp), repeats)
        r[f"conv {label}"] = best(lambda: CV.conv_read(x, Wc, WT, out, False, *g.args(), arg, 256, per, key, ctr, 0,
                                                       B, *flat, scale, tmp), repeats)
        r[f"read^T {label}"] = best(lambda: CV.read_columns(Wc, pix, co, no_bias, cols, 256, per, key, ctr, 0,
                                                            g.pixels, B, scale, tmp), repeats)
        r[f"conv^T {label}"] = best(lambda: CV.conv_transpose_read(y, Wc, back, False, *g.args(), arg, 256, per, key,
                                                                   ctr, 0, B, *flat, scale, tmp), repeats)
    r["gflop"] = 2.0 * n * g.patch * co / 1e9
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "conv_unroll.txt"))
    ap.add_argument("--note", default="", help="a line to keep with the table (e.g. what else ran on the machine)")
    args = ap.parse_args()
    numba.set_num_threads(1)
    lines = [f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores seen, 1 thread; "
             f"batch {args.batch}; best of {args.repeats}; times in ms" + (f"; {args.note}" if args.note else ""),
             "| layer | GFLOP per read | im2col alone | read exact | conv exact (im2col + read + pool/reorder) |"
             " unrolling share | read 8-bit | conv 8-bit | read^T exact | conv^T exact (unpool/reorder + read + col2im) |"
             " unrolling share | conv^T 8-bit |",
             "|" + "---|" * 12]
    with blas.limit_threads(1):
        for name, g, co in LAYERS:
            r = measure(g, co, args.batch, args.repeats)
            lines.append(
                f"| {name} | {r['gflop']:.3f} | {r['im2col']:.3f} | {r['read exact']:.3f} | {r['conv exact']:.3f} | "
                f"{1 - r['read exact'] / r['conv exact']:.0%} | {r['read 8-bit']:.3f} | {r['conv 8-bit']:.3f} | "
                f"{r['read^T exact']:.3f} | {r['conv^T exact']:.3f} | {1 - r['read^T exact'] / r['conv^T exact']:.0%} | "
                f"{r['conv^T 8-bit']:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
