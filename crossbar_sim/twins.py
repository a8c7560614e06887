"""Slow NumPy twins of the Numba kernels, written for clarity. Used only by the tests.

Each twin takes the same arguments as its kernel (or their natural NumPy form) and draws its noise from the
same counter-based stream (:mod:`crossbar_sim.rng`), so results agree to float rounding.
"""
from __future__ import annotations

import numpy as np

from crossbar_sim import kernels as K
from crossbar_sim.rng import normal_np, uniform_np
from networks.convolution import destination_pixels, fold, patches, pixels_to_nchw, pool_max


def dac(x, steps, lo, hi):
    v = np.clip(x.astype(np.float64), lo, hi)
    if steps <= 0:
        return v.astype(np.float32)
    return (lo + np.floor((v - lo) * steps / (hi - lo) + 0.5) * (hi - lo) / steps).astype(np.float32)


def mvm(x, W, block, per, key, ctr):
    """Returns (x @ W through the periphery, new counter); see :func:`crossbar_sim.kernels.mvm`."""
    B, n_in = x.shape
    n_rows, n_out = W.shape
    x_aug = np.concatenate([x, np.full((B, n_rows - n_in), per[K.PER_X_MAX], np.float32)], axis=1)
    if per[K.PER_ANALOG] == 0:
        return x_aug.astype(np.float64) @ W.astype(np.float64), ctr
    out = np.zeros((B, n_out))
    steps, R = per[K.PER_ADC_STEPS], per[K.PER_ADC_RANGE]
    for r0 in range(0, n_rows, block):
        xs = x_aug[:, r0: r0 + block].astype(np.float64)
        y = xs @ W[r0: r0 + block].astype(np.float64)
        noise = normal_np(key, ctr + np.arange(B * n_out, dtype=np.uint64)).reshape(B, n_out)
        y = y + per[K.PER_READ_SIGMA] * np.sqrt((xs ** 2).sum(1, keepdims=True)) * noise
        if steps > 0:
            q = 2 * R / steps
            y = np.floor(np.clip(y, -R, R) / q + 0.5) * q
        out += y
        ctr += B * n_out
    return out, ctr


def settle(x, y, states, weights, dynamics, loss, T, beta, eps, hi, tol, per, key, edges=None, colors=None,
           aux_weight=1.0, omega=1.0):
    """Twin of :func:`crossbar_sim.kernels.settle` over lists of arrays.

    Args:
        states: list of (B, n_l) arrays, layers 1..L (copied, not modified).
        weights: one (n_src + bias, n_dst) matrix per block, bias row last (with cross-entropy, the readouts into
            layer L + 1 last: the main one from L, then auxiliary ones, nudging ``aux_weight`` times as hard).
        edges: (src, dst, bias) or (src, dst, bias, ConvGeometry) per block; default the chain 0 -> 1 -> ... with
            biases. A convolutional block's weights are its unrolled kernel (C k k [+ 1], C_out).
        colors: colour of each layer 0..L for the coordinate dynamics; default odd/even.
        omega: the coordinate dynamics' over-relaxation: each block moves omega times the way to its minimum.

    A pooling block is read forward when its source changes (phase start, after each update of the source),
    its pooled output and winners kept for the destination's drive and the transposed read, as in the kernel.

    Returns:
        (final states, steps of the longest-running sample, largest change in a sample's last step).
        Each sample stops once its largest change in a step is below ``tol``.
    """
    s = [a.astype(np.float32).copy() for a in states]
    L = len(s)
    if edges is None:
        edges = [(l - 1, l, True) for l in range(1, len(weights) + 1)]
    edges = [tuple(e) + (None,) * (4 - len(e)) for e in edges]
    if colors is None:
        colors = [0] + [(l + 1) % 2 for l in range(1, L + 1)]
    inner = [e for e in edges if e[1] <= L]
    readouts = [(e, W) for e, W in zip(edges, weights) if e[1] == L + 1]
    rows, cols = int(per[K.PER_TILE_ROWS]), int(per[K.PER_TILE_COLS])
    analog = per[K.PER_ANALOG] != 0
    dq = (lambda a: dac(a, per[K.PER_DAC_STEPS], 0.0, hi)) if analog else (lambda a: a)
    q = [dq(a) for a in s]
    ctr = 0

    def read(inp, W, block, geom=None, transposed=False, arg=None):
        """The read's output; a forward convolution's comes with its winners (None unless it pools)."""
        nonlocal ctr
        W = np.ascontiguousarray(W)
        if geom is None:
            out, ctr = mvm(inp, W, block, per, key, ctr)
        elif transposed:
            out, ctr = conv_transpose_read(inp, W, geom, block, per, key, ctr, arg)
        else:
            out, arg, ctr = conv_read(inp, W, geom, block, per, key, ctr)
            return out, arg
        return out

    def forward(inp, W, geom):
        return read(inp, W, rows) if geom is None else read(inp, W, rows, geom)[0]

    def pooling(geom):
        return geom is not None and geom.pool > 1

    clamped = {}
    for (src, dst, bias, geom), W in zip(inner, weights):
        if src == 0:
            d = forward(x, W, geom)
            clamped[dst] = d if dst not in clamped else clamped[dst] + d

    stash = {}  # pooling block -> (pooled output, winners) of its source's current state

    def refresh(l):
        for k, ((src, dst, bias, geom), W) in enumerate(zip(inner, weights)):
            if src == l and pooling(geom):
                stash[k] = read(q[l - 1], W, rows, geom)

    for l in range(1, L + 1):
        refresh(l)

    def drive(l):  # l is 1-based
        pre = clamped[l].copy() if l in clamped else np.zeros((x.shape[0], s[l - 1].shape[1]))
        for k, ((src, dst, bias, geom), W) in enumerate(zip(inner, weights)):
            if src == 0 or l not in (src, dst):
                continue
            if dst == l:
                pre = pre + (stash[k][0] if pooling(geom) else forward(q[src - 1], W, geom))
            else:
                pre = pre + read(q[dst - 1], W[: W.shape[0] - bias].T, cols, geom, transposed=True,
                                 arg=stash[k][1] if pooling(geom) else None)
        for (src, *_), V in readouts:
            if src != l or loss != K.LOSS_CE or beta == 0:
                continue
            z = read(q[l - 1], V, rows)
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            err = dac((y - p).astype(np.float32), per[K.PER_DAC_STEPS], -1.0, 1.0)
            pre = pre + (beta if l == L else beta * aux_weight) * read(err, V[:-1].T, cols)
        return pre

    B = x.shape[0]
    active = np.ones(B, bool)
    rowmax = np.zeros(B)
    last = np.zeros(B)

    def update(l, pre):
        old = s[l - 1].astype(np.float64)
        nudge = l == L and loss == K.LOSS_MSE and beta != 0
        if dynamics == K.DYN_EULER:
            v = old - eps * (old - pre) - (eps * beta * (old - y) if nudge else 0.0)
        else:
            if nudge and 1 + beta > 0:
                v = (pre + beta * y) / (1 + beta)
            elif nudge:  # linear or concave block energy: the better end of [0, hi]
                v = np.where(0.5 * (1 + beta) * hi * hi - (pre + beta * y) * hi < 0, hi, 0.0)
            else:
                v = pre
            if dynamics == K.DYN_COORDINATE and not (nudge and 1 + beta <= 0):
                v = old + omega * (v - old)
        v = np.where(active[:, None], np.clip(v, 0.0, hi), old).astype(np.float32)
        s[l - 1] = v
        q[l - 1] = dq(v)
        rowmax[:] = np.maximum(rowmax, np.abs(v.astype(np.float64) - old).max(1))

    steps = np.zeros(B, int)
    for t in range(T):
        rowmax[:] = 0.0
        if dynamics == K.DYN_COORDINATE:
            for colour in range(max(colors[1:]) + 1):
                for l in [l for l in range(1, L + 1) if colors[l] == colour]:
                    update(l, drive(l))
                    refresh(l)
        else:
            pres = [drive(l) for l in range(1, L + 1)]
            for l in range(1, L + 1):
                update(l, pres[l - 1])
            for l in range(1, L + 1):
                refresh(l)
        steps[active] = t + 1
        last[active] = rowmax[active]
        active &= rowmax >= tol
        if not active.any():
            break
    return s, int(steps.max()), float(last.max())


def pulse_counts(dW, dw_step, stochastic, cap, key):
    """Twin of the pulse-count rounding in :func:`crossbar_sim.writeback.write_pairs`."""
    x = dW / dw_step
    if stochastic:
        x = x + uniform_np(key, np.arange(dW.size, dtype=np.uint64)).reshape(dW.shape)
    else:
        x = x + 0.5
    return np.clip(np.floor(x), -cap, cap).astype(np.int64)


def conv_read(x, Wc, g, block, per, key, ctr):
    """Twin of :func:`crossbar_sim.conv.conv_read`: returns ((B, n_dst) float64, winners or None, new counter)."""
    B = x.shape[0]
    pix, ctr = mvm(patches(x, g).astype(np.float32), Wc, block, per, key, ctr)
    if g.pool > 1:
        return (*pool_max(pix, B, g), ctr)
    return pixels_to_nchw(pix, B, g), None, ctr


def conv_transpose_read(y, WTc, g, block, per, key, ctr, arg=None):
    """Twin of :func:`crossbar_sim.conv.conv_transpose_read` (``arg``: the winners, when the block pools):
    returns ((B, C H W) float64, new counter)."""
    B = y.shape[0]
    cols, ctr = mvm(destination_pixels(y, g, arg).astype(np.float32), WTc, block, per, key, ctr)
    return fold(cols, B, g), ctr
