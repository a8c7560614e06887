"""Convolutions on crossbar tiles: the unrolled kernel, and both directions through the same conductances.

A convolution's kernel ``(C_out, C_in, k, k)`` is stored as one ``(C_in k k [+ 1 bias row], C_out)`` conductance
matrix, the unrolled kernel (the row order is torch's ``weight.reshape(C_out, -1).T``: channel, kernel row,
kernel column). Each output pixel is one read of the tiles, driven by that pixel's receptive field (its patch,
zeros where it overhangs the padding). The transposed convolution, which is the feedback of the Hopfield
dynamics, reads the same conductances backwards: each output pixel's ``C_out`` values drive the columns, the
rows give a patch, and the patches are added back into the input image (col2im). Both directions go through
the same tile periphery as :func:`crossbar_sim.reads.mvm` (per-tile read noise with the same draws, ADC, tile
partial sums added digitally).

Layout. Images are flattened per sample in NCHW order, ``(B, C * H * W)``, the layout of the settle kernel's
state layers. The reads work channel-major on a group of samples (:func:`group_size`, so that the patches stay
in cache): the images are first turned sample-minor, ``(C H W, B)``, and the patches become the *columns* of a
``(C k k, OH OW B)`` matrix, column ``p B + b`` for sample b's pixel p. With stride 1 gathering a patch row is
one contiguous copy of ``OW B`` values per image row; the product ``W^T @ patches`` comes out as
``(C_out, OH OW B)``, pooled or turned back to NCHW rows per sample; the feedback ``W @ y`` takes the
destination's channels as rows the same way, and col2im adds whole rows back. Read noise is indexed by
(sample, pixel, output) as in :func:`crossbar_sim.reads.mvm`, so the layout does not change a draw. (The first
version stored one patch per row; gathering and reordering then took 45-80 % of a convolution's time, see
``benchmarks/conv_unroll.py``.)

A pooling block (``pool > 1``, :mod:`networks.convolution`) max-pools the forward read and records each
window's winner; its transposed read puts each destination value back at its window's winner (from the last
forward read) before reading the conductances backwards. The slow NumPy twins are in :mod:`crossbar_sim.twins`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from crossbar_sim.blas import gemm_rows
from crossbar_sim.reads import PER_ADC_RANGE, PER_ADC_STEPS, PER_ANALOG, PER_READ_SIGMA, PER_X_MAX
from crossbar_sim.rng import normal32
from networks.convolution import TIE, ConvGeometry, unroll  # noqa: F401  (re-exported: the geometry and the layout)


@njit(cache=True, fastmath=True)
def sample_minor(x, out):
    """(B, n) rows to (n, B): each unit's values for the B samples side by side."""
    B, n = x.shape
    for b in range(B):
        src = x[b]
        for i in range(n):
            out[i, b] = src[i]


@njit(cache=True, fastmath=True)
def _fill(d, v):
    for i in range(d.size):
        d[i] = v


@njit(cache=True, fastmath=True)
def _copy(d, s):
    for i in range(d.size):
        d[i] = s[i]


@njit(cache=True, fastmath=True)
def im2col(xT, C, H, W, k, stride, pad, OH, OW, out):
    """Patches of the images ``xT`` (C H W, B), sample-minor, as the columns of ``out`` (C k k, OH OW B): column
    ``p B + b`` is sample b's pixel p; entries that overhang the padding are 0. With stride 1 each image row
    inside the padding is one contiguous copy of OW B values. (The copies are plain loops over 1-D views:
    Numba's slice assignment was ~3x slower on these short runs.)"""
    B = xT.shape[1]
    xf = xT.reshape(xT.size)
    run = OW * B
    for c in range(C):
        for ky in range(k):
            for kx in range(k):
                row = out[(c * k + ky) * k + kx]
                for oh in range(OH):
                    yy = oh * stride - pad + ky
                    o = oh * run
                    if yy < 0 or yy >= H:
                        _fill(row[o: o + run], 0.0)
                        continue
                    src = ((c * H + yy) * W - pad + kx) * B
                    if stride == 1:  # one copy of the part inside the image, zeros on the padding
                        lo, hi = max(0, pad - kx), min(OW, W + pad - kx)
                        _fill(row[o: o + lo * B], 0.0)
                        _copy(row[o + lo * B: o + hi * B], xf[src + lo * B: src + hi * B])
                        _fill(row[o + hi * B: o + run], 0.0)
                        continue
                    for ow in range(OW):
                        xx = ow * stride - pad + kx
                        d = o + ow * B
                        if 0 <= xx < W:
                            s0 = src + ow * stride * B
                            _copy(row[d: d + B], xf[s0: s0 + B])
                        else:
                            _fill(row[d: d + B], 0.0)


@njit(cache=True, fastmath=True)
def col2im(cols, C, H, W, k, stride, pad, OH, OW, outT):
    """Adds each patch column of ``cols`` (C k k, OH OW B) back into the sample-minor images ``outT``
    (C H W, B); the adjoint of :func:`im2col` (overhanging entries fall on the padding and are dropped)."""
    B = outT.shape[1]
    of = outT.reshape(outT.size)
    run = OW * B
    for c in range(C):
        for ky in range(k):
            for kx in range(k):
                row = cols[(c * k + ky) * k + kx]
                for oh in range(OH):
                    yy = oh * stride - pad + ky
                    if yy < 0 or yy >= H:
                        continue
                    o = oh * run
                    dst = ((c * H + yy) * W - pad + kx) * B
                    # The adds run on 1-D views: indexing the whole arrays, the loop stayed scalar (6x slower).
                    if stride == 1:
                        lo, hi = max(0, pad - kx), min(OW, W + pad - kx)
                        d, s = of[dst + lo * B: dst + hi * B], row[o + lo * B: o + hi * B]
                        for i in range(d.size):
                            d[i] += s[i]
                        continue
                    for ow in range(OW):
                        xx = ow * stride - pad + kx
                        if 0 <= xx < W:
                            d0, s0 = dst + ow * stride * B, o + ow * B
                            d, s = of[d0: d0 + B], row[s0: s0 + B]
                            for b in range(B):
                                d[b] += s[b]


@njit(cache=True, fastmath=True)
def read_columns(A, cols, K, bias, acc, block, per, key, ctr, row0, P, B_total, scale, tmp):
    """One crossbar read per column of ``cols``: ``acc = A[:, :K] @ cols[:K]`` (+ ``x_max`` times ``bias``) through
    the periphery, the transposed orientation of :func:`crossbar_sim.reads.mvm` with the same noise draws.

    Args:
        A: (n_out, >= K) float32, the conductances with the read's outputs as rows.
        cols: (>= K, N) float32, one read's inputs per column (already through the DAC).
        K: inputs of a read (rows of the crossbar driven); tiles of ``block`` of them are read separately.
        bias: (n_out,) float32 bias row, driven by ``per[PER_X_MAX]`` in the last tile; empty for none.
        acc: (n_out, N) float32 result.
        row0, P, B_total: the columns are the P pixels of samples ``row0 ..`` of a batch of ``B_total``, column
            ``p B + b`` sample b's pixel p; read noise is indexed ``ctr + read * n_out + output`` with
            ``read = (row0 + b) P + p``, as in ``mvm`` with one read per pixel.
        scale: scratch (N,); tmp: scratch (n_out, N) flat, at least n_out * N.

    Returns:
        The noise counter after this read.
    """
    n_out = A.shape[0]
    N = cols.shape[1]
    x_max = np.float32(per[PER_X_MAX])
    has_bias = bias.size > 0
    n_rows = K + (1 if has_bias else 0)
    if per[PER_ANALOG] == 0.0:
        gemm_rows(A, 0, K, cols, 0, acc, 0.0)
        if has_bias:
            for j in range(n_out):
                bj = x_max * bias[j]
                for i in range(N):
                    acc[j, i] += bj
        return ctr
    sigma = per[PER_READ_SIGMA]
    adc_steps = per[PER_ADC_STEPS]
    R = np.float32(per[PER_ADC_RANGE])
    q = np.float32(2.0 * per[PER_ADC_RANGE] / adc_steps if adc_steps > 0 else 0.0)
    inv_q = np.float32(1.0 / q if adc_steps > 0 else 0.0)
    ys = tmp[: n_out * N].reshape(n_out, N)
    for r0 in range(0, n_rows, block):
        r1 = min(r0 + block, n_rows)
        c1 = min(r1, K)
        bias_here = has_bias and r1 > K
        gemm_rows(A, r0, c1, cols, r0, ys, 0.0)
        for i in range(N):
            scale[i] = x_max * x_max if bias_here else np.float32(0.0)
        for r in range(r0, c1):
            src = cols[r]
            for i in range(N):
                scale[i] += src[i] * src[i]
        for i in range(N):
            scale[i] = sigma * math.sqrt(scale[i])
        for j in range(n_out):
            row = ys[j]
            if bias_here:
                bj = x_max * bias[j]
                for i in range(N):
                    row[i] += bj
            if sigma > 0.0:
                Bc = N // P
                for p in range(P):
                    for b in range(Bc):
                        i = p * Bc + b
                        draw = ctr + np.uint64(((row0 + b) * P + p) * n_out + j)
                        row[i] += np.float32(scale[i]) * normal32(key, draw)
            if q > 0.0:
                for i in range(N):
                    row[i] = np.floor(min(max(row[i], -R), R) * inv_q + np.float32(0.5)) * q
            dst = acc[j]
            if r0 == 0:
                for i in range(N):
                    dst[i] = row[i]
            else:
                for i in range(N):
                    dst[i] += row[i]
        ctr += np.uint64(B_total * P * n_out)
    return ctr


GROUP_FLOATS = 1 << 19  # patch-matrix entries per group of samples (2 MB): the patches stay in cache


@njit(cache=True)
def group_size(C, k, OH, OW, B):
    """Samples per group of a convolutional read: as many as keep their patch matrix within GROUP_FLOATS."""
    return max(1, min(B, GROUP_FLOATS // (C * k * k * OH * OW)))


@njit(cache=True)
def _sub(a, r0, r1):
    """Rows r0..r1 of the C-contiguous 2-D ``a``, typed C-contiguous."""
    m = a.shape[1]
    return a.reshape(a.size)[r0 * m: r1 * m].reshape(r1 - r0, m)


@njit(cache=True)
def conv_read(x, Wc, WTc, out, accumulate, C, H, W, k, stride, pad, OH, OW, pool, arg, block, per, key, ctr, row0,
              B_total, img, cols, pix, scale, tmp):
    """``out = P(conv(x))`` through the tiles, in groups of samples (:func:`group_size`); see
    :func:`_conv_read_group` for the arguments. The scratch ``img, cols, pix, scale, tmp`` is flat, with room
    for one group."""
    B, P = x.shape[0], OH * OW
    co, n_in = WTc.shape[0], x.shape[1]
    G = group_size(C, k, OH, OW, B)
    end = ctr
    for g0 in range(0, B, G):
        g1 = min(B, g0 + G)
        n = g1 - g0
        a = _sub(arg, g0, g1) if pool > 1 else arg
        end = _conv_read_group(_sub(x, g0, g1), Wc, WTc, _sub(out, g0, g1), accumulate, C, H, W, k, stride, pad,
                               OH, OW, pool, a, block, per, key, ctr, row0 + g0, B_total,
                               img[: n_in * n].reshape(n_in, n), cols[: C * k * k * P * n].reshape(C * k * k, P * n),
                               pix[: co * P * n].reshape(co, P * n), scale[: P * n], tmp)
    return end


@njit(cache=True)
def _conv_read_group(x, Wc, WTc, out, accumulate, C, H, W, k, stride, pad, OH, OW, pool, arg, block, per, key, ctr,
                     row0, B_total, img, cols, pix, scale, tmp):
    """``out = P(conv(x))`` through the tiles: (B, C H W) images, already through the DAC, to
    (B, C_out OH OW / pool^2), NCHW.

    Args:
        Wc: the unrolled kernel (C k k [+ 1 bias row], C_out), as read from the conductances; only its bias row
            is used here. WTc: the same kernel transposed, (C_out, C k k), which the product uses.
        accumulate: add to ``out`` instead of overwriting it.
        pool, arg: the max-pool window (1: none) and, when pooling, where each pooled unit's winning window
            position goes (float32, shaped like ``out``).
        block: tile rows. per, key, ctr: periphery and noise stream, as for :func:`crossbar_sim.reads.mvm`;
            each output pixel is one read and draws its own noise.
        row0, B_total: ``x`` holds samples ``row0 ..`` of a batch of ``B_total`` (noise is indexed by the pixel
            in the whole batch, so it does not depend on how the batch is split between threads).
        img: scratch (C H W, B); cols: scratch (C k k, OH OW B); pix: scratch (C_out, OH OW B);
            scale: scratch (OH OW B,); tmp: scratch of at least C_out OH OW B.

    Returns:
        The noise counter after the read.
    """
    B = x.shape[0]
    P = OH * OW
    patch = C * k * k
    co = WTc.shape[0]
    sample_minor(x, img)
    im2col(img, C, H, W, k, stride, pad, OH, OW, cols)
    bias = Wc[patch] if Wc.shape[0] > patch else Wc[0, 0:0]
    ctr = read_columns(WTc, cols, patch, bias, pix, block, per, key, ctr, row0, P, B_total, scale, tmp)
    if pool > 1:  # pooled units (sample-minor) and winners into the free tile buffer
        m = co * (P // (pool * pool))
        pooled = tmp[: m * B].reshape(m, B)
        _pool(pix, pooled, tmp[m * B: 2 * m * B].reshape(m, B), B, co, OH, OW, pool)
        _sample_major(pooled, out, accumulate)
        _sample_major(tmp[m * B: 2 * m * B].reshape(m, B), arg, False)
        return ctr
    _sample_major(pix.reshape(co * P, B), out, accumulate)
    return ctr


@njit(cache=True, fastmath=True)
def _sample_major(xT, out, accumulate):
    """(n, B) sample-minor values into the (B, n) rows ``out`` (added when ``accumulate``)."""
    n, B = xT.shape
    for b in range(B):
        dst = out[b]
        if accumulate:
            for i in range(n):
                dst[i] += xT[i, b]
        else:
            for i in range(n):
                dst[i] = xT[i, b]


@njit(cache=True, fastmath=True)
def _pool(pix, pooled, arg, B, co, OH, OW, q):
    """The max of each q x q window of the (C_out, OH OW B) pixels into ``pooled`` (C_out OH OW / q^2, B), and
    the winner's window position (row-major; the first on a tie, within ``TIE``) into ``arg`` (same shape)."""
    PH, PW = OH // q, OW // q
    tie = np.float32(TIE)
    one = np.float32(1.0)
    for j in range(co):
        src = pix[j]
        for ph in range(PH):
            for pw in range(PW):
                u = (j * PH + ph) * PW + pw
                o = (ph * q * OW + pw * q) * B
                best, at = pooled[u], arg[u]
                for b in range(B):
                    best[b] = src[o + b]
                    at[b] = 0.0
                for dy in range(q):
                    for dx in range(q):
                        if dy + dx == 0:
                            continue
                        w = o + (dy * OW + dx) * B
                        idx = np.float32(dy * q + dx)
                        for b in range(B):
                            v = src[w + b]
                            if v > best[b] + tie * max(one, abs(best[b])):
                                best[b] = v
                                at[b] = idx


@njit(cache=True)
def _unpool(y, arg, pix, B, co, OH, OW, q):
    """The (B, C_out OH OW / q^2) pooled images ``y`` as (C_out, OH OW B) pixels: each value at its window's
    winner ``arg``, zeros elsewhere."""
    PH, PW = OH // q, OW // q
    pix[:, :] = 0.0
    for j in range(co):
        dst = pix[j]
        for ph in range(PH):
            for pw in range(PW):
                u = (j * PH + ph) * PW + pw
                o = (ph * q * OW + pw * q) * B
                for b in range(B):
                    at = int(arg[b, u])
                    dst[o + ((at // q) * OW + at % q) * B + b] = y[b, u]


@njit(cache=True)
def conv_transpose_read(y, Wk, out, accumulate, C, H, W, k, stride, pad, OH, OW, pool, arg, block, per, key, ctr,
                        row0, B_total, img, cols, pix, scale, tmp):
    """``out = conv^T(unpool(y))`` through the tiles, in groups of samples (:func:`group_size`); see
    :func:`_conv_transpose_group` for the arguments. The scratch is flat, with room for one group."""
    B, P = y.shape[0], OH * OW
    co, n_img = Wk.shape[1], out.shape[1]
    G = group_size(C, k, OH, OW, B)
    end = ctr
    for g0 in range(0, B, G):
        g1 = min(B, g0 + G)
        n = g1 - g0
        a = _sub(arg, g0, g1) if pool > 1 else arg
        end = _conv_transpose_group(_sub(y, g0, g1), Wk, _sub(out, g0, g1), accumulate, C, H, W, k, stride, pad,
                                    OH, OW, pool, a, block, per, key, ctr, row0 + g0, B_total,
                                    img[: n_img * n].reshape(n_img, n),
                                    cols[: C * k * k * P * n].reshape(C * k * k, P * n),
                                    pix[: co * P * n].reshape(co, P * n), scale[: P * n], tmp)
    return end


@njit(cache=True)
def _conv_transpose_group(y, Wk, out, accumulate, C, H, W, k, stride, pad, OH, OW, pool, arg, block, per, key, ctr,
                          row0, B_total, img, cols, pix, scale, tmp):
    """``out = conv^T(unpool(y))`` through the same conductances read backwards: (B, C_out OH OW / pool^2),
    already through the DAC, to (B, C H W).

    Args:
        Wk: the unrolled kernel without its bias row, (C k k, C_out) (the transposed read drives the columns;
            the bias line is not an input there).
        accumulate, row0, B_total: as for :func:`conv_read`.
        pool, arg: the max-pool window and, when pooling, the winners recorded by the forward read.
        block: tile columns. img, cols, pix, scale: as for :func:`conv_read`; tmp of at least C k k OH OW B.

    Returns:
        The noise counter after the read.
    """
    B = y.shape[0]
    P = OH * OW
    co = Wk.shape[1]
    if pool > 1:
        _unpool(y, arg, pix, B, co, OH, OW, pool)
    else:
        for j in range(co):
            dst = pix[j]
            for p in range(P):
                for b in range(B):
                    dst[p * B + b] = y[b, j * P + p]
    ctr = read_columns(Wk, pix, co, Wk[0, 0:0], cols, block, per, key, ctr, row0, P, B_total, scale, tmp)
    img[:, :] = 0.0
    col2im(cols, C, H, W, k, stride, pad, OH, OW, img)
    _sample_major(img, out, accumulate)
    return ctr
