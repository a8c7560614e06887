"""One read of a crossbar matrix through its periphery (DAC'd inputs, tiles, read noise, ADC), and the DAC.

Shared by the settle loop (:mod:`crossbar_sim.kernels`) and the convolutions (:mod:`crossbar_sim.conv`).
``per`` is the periphery vector, indexed by ``PER_*``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from crossbar_sim.blas import gemm_rows
from crossbar_sim.rng import normal32

PER_ANALOG, PER_DAC_STEPS, PER_ADC_STEPS, PER_ADC_RANGE, PER_READ_SIGMA, PER_TILE_ROWS, PER_TILE_COLS, PER_X_MAX = range(8)
N_PER = 8


# The converters and the layer update are compiled with fast-math so that their loops vectorise. Non-finite
# values are therefore not caught inside them but afterwards, on the states and pre-activations (settle).
@njit(cache=True, fastmath=True)
def dac(src, dst, steps, lo, hi):
    """Quantise ``src`` onto ``steps + 1`` evenly spaced levels in [lo, hi] (clipping), into ``dst``.

    ``steps == 0`` means no quantisation: a clipped copy. Arrays are flat float32.
    """
    lo_ = np.float32(lo)
    hi_ = np.float32(hi)
    if steps <= 0:
        for i in range(src.size):
            dst[i] = min(max(src[i], lo_), hi_)
        return
    scale = np.float32(steps / (hi - lo))
    inv = np.float32((hi - lo) / steps)
    half = np.float32(0.5)
    for i in range(src.size):
        v = min(max(src[i], lo_), hi_)
        dst[i] = lo_ + np.floor((v - lo_) * scale + half) * inv


@njit(cache=True, fastmath=True)
def mvm(x, W, out, accumulate, block, per, key, ctr, row0, B_total, xb, yb):
    """One read of a crossbar matrix: ``out (+)= x @ W`` through the periphery.

    Args:
        x: (B, n_in) float32 inputs, already through the DAC.
        W: (n_in, n_out) or (n_in + 1, n_out) float32; an extra last row is a bias row driven by ``per[PER_X_MAX]``.
        out: (B, n_out) float32 result; overwritten unless ``accumulate``.
        block: rows per physical tile in this direction (tile rows forward, tile columns backward).
        per: periphery vector. With ``per[PER_ANALOG] == 0`` the read is an exact float product.
        key, ctr: noise stream and the index of its first draw (uint64).
        row0, B_total: ``x`` holds rows ``row0 ..`` of a batch of ``B_total``. Noise is indexed by the row in the
            whole batch, so a row's draws do not depend on how the batch is split between threads.
        xb: flat float32 scratch of at least B elements; yb: at least B * n_out elements.

    Returns:
        The noise counter after this read.

    In analog mode each tile's column currents are summed in analog, get read noise, and are digitised by the
    ADC; the tiles stacked along the input dimension are then added digitally. Read noise is each device's
    white conductance noise summed over its column: for inputs ``x`` on a tile its std is
    ``per[PER_READ_SIGMA] * ||x||_2``, independent per output and per read.
    """
    B, n_in = x.shape
    n_rows, n_out = W.shape
    has_bias = n_rows > n_in
    x_max = np.float32(per[PER_X_MAX])
    if per[PER_ANALOG] == 0.0:
        gemm_rows(x, 0, n_in, W, 0, out, 1.0 if accumulate else 0.0)
        if has_bias:
            for b in range(B):
                for j in range(n_out):
                    out[b, j] += x_max * W[n_in, j]
        return ctr
    sigma = per[PER_READ_SIGMA]
    adc_steps = per[PER_ADC_STEPS]
    R = np.float32(per[PER_ADC_RANGE])
    q = np.float32(2.0 * per[PER_ADC_RANGE] / adc_steps if adc_steps > 0 else 0.0)
    inv_q = np.float32(1.0 / q if adc_steps > 0 else 0.0)
    ys = yb[: B * n_out].reshape(B, n_out)
    scale = xb[:B]
    first = not accumulate
    for r0 in range(0, n_rows, block):
        r1 = min(r0 + block, n_rows)
        c1 = min(r1, n_in)  # the bias row, when in this tile, is added below rather than multiplied
        bias_here = has_bias and r1 > n_in
        gemm_rows(x, r0, c1, W, r0, ys, 0.0)
        for b in range(B):
            ss = x_max * x_max if bias_here else np.float32(0.0)
            for i in range(r0, c1):
                ss += x[b, i] * x[b, i]
            scale[b] = sigma * math.sqrt(ss)
        for b in range(B):
            row = ys[b]
            if bias_here:
                for j in range(n_out):
                    row[j] += x_max * W[n_in, j]
            if sigma > 0.0:
                sb = np.float32(scale[b])
                base = ctr + np.uint64((row0 + b) * n_out)
                for j in range(n_out):
                    row[j] += sb * normal32(key, base + np.uint64(j))
            if q > 0.0:
                for j in range(n_out):
                    row[j] = np.floor(min(max(row[j], -R), R) * inv_q + np.float32(0.5)) * q
            dst = out[b]
            if first:
                for j in range(n_out):
                    dst[j] = row[j]
            else:
                for j in range(n_out):
                    dst[j] += row[j]
        ctr += np.uint64(B_total * n_out)
        first = False
    return ctr
