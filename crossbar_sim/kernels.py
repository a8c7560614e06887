"""Numba kernels of the relaxation: DAC, tiled analog matrix-vector product, and the settle loop.

Kernels are plain functions over arrays and scalars; :mod:`crossbar_sim.engine` translates a network on
tiles into these arrays once, and :mod:`crossbar_sim.twins` holds the slow NumPy twin of each kernel.

Array conventions (all float32, C-contiguous, batch first):

* ``S``: every state layer, flattened one after the other; layer ``l`` (1..L) is the (B, n[l]) block
  starting at ``soff[l]``. ``Q`` is the same layout after the DAC (``Q is S`` when the DAC is off).
* ``Wf``: every weight matrix ``m`` (1..M) as read from its conductances, an (n_in + 1, n_out) block at
  ``woff[m]`` whose last row is the bias row (driven by the constant ``x_max``). ``WTf``: the same
  conductances in transposed layout, (n_out, n_in) at ``wtoff[m]``, without the bias row. Both are
  refreshed from one conductance array after every write, so a forward and a backward read see the same
  devices; the second layout only lets BLAS run both directions at full speed.
* ``per``: the periphery, indexed by ``PER_*``.
* ``cfg``: the phase, indexed by ``CFG_*``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from crossbar_sim.rng import normal

PER_ANALOG, PER_DAC_STEPS, PER_ADC_STEPS, PER_ADC_RANGE, PER_READ_SIGMA, PER_TILE_ROWS, PER_TILE_COLS, PER_X_MAX = range(8)
N_PER = 8
CFG_DYN, CFG_LOSS, CFG_T, CFG_BETA, CFG_EPS, CFG_HI, CFG_TOL = range(7)
N_CFG = 7
DYN_EULER, DYN_FIXED_POINT, DYN_COORDINATE = 0, 1, 2
DYNAMICS = {"euler": DYN_EULER, "fixed_point": DYN_FIXED_POINT, "coordinate": DYN_COORDINATE}
LOSS_MSE, LOSS_CE = 0, 1
LOSSES = {"mse": LOSS_MSE, "cross_entropy": LOSS_CE}
STATUS_OK, STATUS_NONFINITE = 0, 1


@njit(cache=True)
def dac(src, dst, steps, lo, hi):
    """Quantise ``src`` onto ``steps + 1`` evenly spaced levels in [lo, hi] (clipping), into ``dst``.

    ``steps == 0`` means no quantisation: a clipped copy. Arrays are flat float32.
    """
    if steps <= 0:
        for i in range(src.size):
            dst[i] = min(max(src[i], lo), hi)
        return
    scale = steps / (hi - lo)
    inv = (hi - lo) / steps
    for i in range(src.size):
        v = min(max(src[i], lo), hi)
        dst[i] = lo + math.floor((v - lo) * scale + 0.5) * inv


@njit(cache=True)
def mvm(x, W, out, accumulate, block, per, key, ctr, xb, yb):
    """One read of a crossbar matrix: ``out (+)= x @ W`` through the periphery.

    Args:
        x: (B, n_in) float32 inputs, already through the DAC.
        W: (n_in, n_out) or (n_in + 1, n_out) float32; an extra last row is a bias row driven by ``per[PER_X_MAX]``.
        out: (B, n_out) float32 result; overwritten unless ``accumulate``.
        block: rows per physical tile in this direction (tile rows forward, tile columns backward).
        per: periphery vector. With ``per[PER_ANALOG] == 0`` the read is an exact float product.
        key, ctr: noise stream and the index of its first draw (uint64).
        xb, yb: flat float32 scratch of at least B * block and B * n_out elements.

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
    x_max = per[PER_X_MAX]
    if per[PER_ANALOG] == 0.0:
        if accumulate:
            y = yb[: B * n_out].reshape(B, n_out)
            np.dot(x, W[:n_in], y)
            for b in range(B):
                for j in range(n_out):
                    out[b, j] += y[b, j]
        else:
            np.dot(x, W[:n_in], out)
        if has_bias:
            for b in range(B):
                for j in range(n_out):
                    out[b, j] += x_max * W[n_in, j]
        return ctr
    sigma = per[PER_READ_SIGMA]
    adc_steps = per[PER_ADC_STEPS]
    rng_ = per[PER_ADC_RANGE]
    q = 2.0 * rng_ / adc_steps if adc_steps > 0 else 0.0
    first = not accumulate
    for r0 in range(0, n_rows, block):
        r1 = min(r0 + block, n_rows)
        m = r1 - r0
        xs = xb[: B * m].reshape(B, m)
        for b in range(B):
            for i in range(m):
                xs[b, i] = x[b, r0 + i] if r0 + i < n_in else x_max
        ys = yb[: B * n_out].reshape(B, n_out)
        np.dot(xs, W[r0:r1], ys)
        for b in range(B):
            scale = 0.0
            if sigma > 0.0:
                ss = 0.0
                for i in range(m):
                    ss += xs[b, i] * xs[b, i]
                scale = sigma * math.sqrt(ss)
            base = ctr + np.uint64(b * n_out)
            for j in range(n_out):
                v = ys[b, j] + scale * normal(key, base + np.uint64(j))
                if q > 0.0:
                    v = math.floor(min(max(v, -rng_), rng_) / q + 0.5) * q
                if first:
                    out[b, j] = v
                else:
                    out[b, j] += v
        ctr += np.uint64(B * n_out)
        first = False
    return ctr


@njit(cache=True)
def _layer(S, soff, n, l, B):
    return S[soff[l]: soff[l] + B * n[l]].reshape(B, n[l])


@njit(cache=True)
def _weights(Wf, off, rows, cols):
    return Wf[off: off + rows * cols].reshape(rows, cols)


@njit(cache=True)
def _drive(l, L, M, x, Q, S, Wf, WTf, n, soff, woff, wtoff, drive1, pre, y, beta, loss, per, key, ctr, xb, yb, ce):
    """Everything that pushes on layer ``l``: input from below, feedback from above, and the CE nudge.

    Writes the (B, n[l]) pre-activation into ``pre`` and returns the noise counter.
    """
    B = x.shape[0]
    rows = int(per[PER_TILE_ROWS])
    cols = int(per[PER_TILE_COLS])
    if l == 1:
        pre[:, :] = drive1
    else:
        ctr = mvm(_layer(Q, soff, n, l - 1, B), _weights(Wf, woff[l], n[l - 1] + 1, n[l]), pre, False,
                  rows, per, key, ctr, xb, yb)
    if l < L:
        ctr = mvm(_layer(Q, soff, n, l + 1, B), _weights(WTf, wtoff[l + 1], n[l + 1], n[l]), pre, True,
                  cols, per, key, ctr, xb, yb)
    elif loss == LOSS_CE and beta != 0.0:
        # Softmax readout outside the dynamics (Laborieux 2021): the nudge is beta * (y - p) @ V^T.
        k = n[M]
        logits = ce[: B * k].reshape(B, k)
        ctr = mvm(_layer(Q, soff, n, L, B), _weights(Wf, woff[M], n[L] + 1, k), logits, False,
                  rows, per, key, ctr, xb, yb)
        for b in range(B):
            mx = logits[b, 0]
            for j in range(1, k):
                mx = max(mx, logits[b, j])
            z = 0.0
            for j in range(k):
                logits[b, j] = math.exp(logits[b, j] - mx)
                z += logits[b, j]
            for j in range(k):
                logits[b, j] = y[b, j] - logits[b, j] / z
        err = ce[B * k: 2 * B * k]
        dac(logits.ravel(), err, per[PER_DAC_STEPS], -1.0, 1.0)
        fb = ce[2 * B * k: 2 * B * k + B * n[L]].reshape(B, n[L])
        ctr = mvm(err.reshape(B, k), _weights(WTf, wtoff[M], k, n[L]), fb, False, cols, per, key, ctr, xb, yb)
        for b in range(B):
            for j in range(n[L]):
                pre[b, j] += beta * fb[b, j]
    return ctr


@njit(cache=True)
def _update(s, pre, y, nudge_out, dyn, beta, eps, hi):
    """Move one layer towards its block minimum. Returns (largest |change|, sum of |change|, any non-finite input)."""
    B, m = s.shape
    delta = 0.0
    total = 0.0
    bad = False
    for b in range(B):
        for j in range(m):
            p = pre[b, j]
            if not math.isfinite(p):
                bad = True
            old = s[b, j]
            if dyn == DYN_EULER:
                v = old - eps * (old - p)
                if nudge_out:
                    v -= eps * beta * (old - y[b, j])
            elif nudge_out:
                v = (p + beta * y[b, j]) / (1.0 + beta)  # exact minimiser of the MSE-nudged block
            else:
                v = p
            v = min(max(v, 0.0), hi)
            d = abs(v - old)
            total += d
            if d > delta:
                delta = d
            s[b, j] = v
    return delta, total, bad


@njit(cache=True)
def settle(x, y, S, Q, Wf, WTf, n, soff, woff, wtoff, cfg, per, key, ctr, work):
    """Relax the network to equilibrium: one call runs a whole phase.

    Args:
        x: (B, n[0]) float32 clamped input, already through the DAC.
        y: (B, n_target) float32 target (one-hot); used only when ``cfg[CFG_BETA] != 0``.
        S, Q: flat float32 states and their DAC image (see module docstring); ``S`` holds the initial state and
            receives the final one.
        Wf, WTf, n, soff, woff, wtoff: weights and layout (module docstring). ``n`` has L + 1 entries
            (input and state layers), plus the class count when the loss is cross-entropy.
        cfg: float64 phase settings (``CFG_*``): dynamics, loss, max steps T, beta, Euler step, state bound, tol.
        per: float64 periphery (``PER_*``).
        key, ctr: read-noise stream and counter (uint64).
        work: flat float32 scratch, at least :func:`work_size` elements.

    Returns:
        (steps used, largest and mean |state change| in the last step, status, noise counter after the phase).
    """
    dyn = int(cfg[CFG_DYN])
    loss = int(cfg[CFG_LOSS])
    T = int(cfg[CFG_T])
    beta = cfg[CFG_BETA]
    eps = cfg[CFG_EPS]
    hi = cfg[CFG_HI]
    tol = cfg[CFG_TOL]
    B = x.shape[0]
    L = soff.size - 1
    M = woff.size - 1
    analog = per[PER_ANALOG] != 0.0
    dac_steps = per[PER_DAC_STEPS]
    total = soff[L] + B * n[L]
    # Carve the scratch: synchronous pre-activations, layer-1 drive, tile in/out buffers, CE buffers.
    pre_all = work[:total]
    drive1 = work[total: total + B * n[1]].reshape(B, n[1])
    o = total + B * n[1]
    nmax = 0
    for i in range(n.size):
        nmax = max(nmax, n[i])
    blk = int(max(per[PER_TILE_ROWS], per[PER_TILE_COLS]))
    xb = work[o: o + B * (blk + 1)]
    o += B * (blk + 1)
    yb = work[o: o + B * nmax]
    o += B * nmax
    ce = work[o: o + B * (2 * nmax + nmax)]
    rows = int(per[PER_TILE_ROWS])
    if analog:
        dac(S[:total], Q[:total], dac_steps, 0.0, hi)
    # The input is clamped for the whole phase, so its product is read once.
    ctr = mvm(x, _weights(Wf, woff[1], n[0] + 1, n[1]), drive1, False, rows, per, key, ctr, xb, yb)
    delta = 0.0
    steps = 0
    dsum = 0.0
    for t in range(T):
        delta = 0.0
        dsum = 0.0
        bad = False
        if dyn == DYN_COORDINATE:
            for parity in (1, 0):
                for l in range(1, L + 1):
                    if l % 2 != parity:
                        continue
                    pre = _layer(pre_all, soff, n, l, B)
                    ctr = _drive(l, L, M, x, Q, S, Wf, WTf, n, soff, woff, wtoff, drive1, pre, y, beta, loss,
                                 per, key, ctr, xb, yb, ce)
                    d, sd, b_ = _update(_layer(S, soff, n, l, B), pre, y, l == L and loss == LOSS_MSE and beta != 0.0,
                                    dyn, beta, eps, hi)
                    delta = max(delta, d)
                    dsum += sd
                    bad = bad or b_
                    if analog:
                        dac(S[soff[l]: soff[l] + B * n[l]], Q[soff[l]: soff[l] + B * n[l]], dac_steps, 0.0, hi)
        else:
            for l in range(1, L + 1):
                ctr = _drive(l, L, M, x, Q, S, Wf, WTf, n, soff, woff, wtoff, drive1, _layer(pre_all, soff, n, l, B),
                             y, beta, loss, per, key, ctr, xb, yb, ce)
            for l in range(1, L + 1):
                d, sd, b_ = _update(_layer(S, soff, n, l, B), _layer(pre_all, soff, n, l, B), y,
                                l == L and loss == LOSS_MSE and beta != 0.0, dyn, beta, eps, hi)
                delta = max(delta, d)
                dsum += sd
                bad = bad or b_
            if analog:
                dac(S[soff[1]: total], Q[soff[1]: total], dac_steps, 0.0, hi)
        steps = t + 1
        if bad:
            return steps, delta, dsum / total, STATUS_NONFINITE, ctr
        if delta < tol:
            break
    return steps, delta, dsum / total, STATUS_OK, ctr


def work_size(batch: int, sizes, tile_rows: int, tile_cols: int) -> int:
    """Scratch elements :func:`settle` needs for a batch and the layer sizes ``n``."""
    nmax = max(sizes)
    return batch * (sum(sizes[1:]) + sizes[1] + max(tile_rows, tile_cols) + 1 + nmax + 3 * nmax) + 64
