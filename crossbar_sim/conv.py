"""Convolutions on crossbar tiles: the unrolled kernel, and both directions through the same conductances.

A convolution's kernel ``(C_out, C_in, k, k)`` is stored as one ``(C_in k k [+ 1 bias row], C_out)`` conductance
matrix, the unrolled kernel (the row order is torch's ``weight.reshape(C_out, -1).T``: channel, kernel row,
kernel column). Each output pixel is one read of the tiles, driven by that pixel's receptive field (its patch,
zeros where it overhangs the padding). The transposed convolution, which is the feedback of the Hopfield
dynamics, reads the same conductances backwards: each output pixel's ``C_out`` values drive the columns, the
rows give a patch, and the patches are added back into the input image (col2im). Both directions go through
the tile periphery of :func:`crossbar_sim.kernels.mvm` (DAC'd inputs, per-tile read noise and ADC).

Images are flattened per sample in NCHW order, ``(B, C * H * W)``, the layout of the settle kernel's state
layers. A pooling block (``pool > 1``, :mod:`networks.convolution`) max-pools the forward read and records each
window's winner; its transposed read puts each destination value back at its window's winner (from the last
forward read) before reading the conductances backwards. The slow NumPy twins are in :mod:`crossbar_sim.twins`.
"""
from __future__ import annotations

from numba import njit

from crossbar_sim.reads import mvm
from networks.convolution import TIE, ConvGeometry, unroll  # noqa: F401  (re-exported: the geometry and the layout)


@njit(cache=True)
def _span(o, stride, pad, k, size):
    """For output position ``o``: the first input position of its window and the kernel offsets [lo, hi)
    that fall inside the image."""
    start = o * stride - pad
    return start, max(0, -start), min(k, size - start)


@njit(cache=True, fastmath=True)
def im2col(x, C, H, W, k, stride, pad, OH, OW, out):
    """Patches of the (B, C H W) images ``x`` as the rows of ``out`` (B OH OW, C k k), pixel-major per sample."""
    B = x.shape[0]
    for b in range(B):
        for oh in range(OH):
            y0, ylo, yhi = _span(oh, stride, pad, k, H)
            for ow in range(OW):
                x0, xlo, xhi = _span(ow, stride, pad, k, W)
                row = out[(b * OH + oh) * OW + ow]
                row[:] = 0.0
                for c in range(C):
                    for ky in range(ylo, yhi):
                        src = (c * H + y0 + ky) * W + x0
                        dst = (c * k + ky) * k
                        for kx in range(xlo, xhi):  # a contiguous run in both arrays
                            row[dst + kx] = x[b, src + kx]


@njit(cache=True, fastmath=True)
def col2im(cols, C, H, W, k, stride, pad, OH, OW, out):
    """Adds each patch row of ``cols`` (B OH OW, C k k) back into the (B, C H W) images ``out``; the adjoint of
    :func:`im2col` (overhanging entries fall on the padding and are dropped)."""
    B = out.shape[0]
    for b in range(B):
        for oh in range(OH):
            y0, ylo, yhi = _span(oh, stride, pad, k, H)
            for ow in range(OW):
                x0, xlo, xhi = _span(ow, stride, pad, k, W)
                row = cols[(b * OH + oh) * OW + ow]
                for c in range(C):
                    for ky in range(ylo, yhi):
                        dst = (c * H + y0 + ky) * W + x0
                        src = (c * k + ky) * k
                        for kx in range(xlo, xhi):
                            out[b, dst + kx] += row[src + kx]


@njit(cache=True)
def conv_read(x, Wc, out, accumulate, C, H, W, k, stride, pad, OH, OW, pool, arg, block, per, key, ctr, row0,
              B_total, patches, pix, xb, yb):
    """``out = P(conv(x))`` through the tiles: (B, C H W) images, already through the DAC, to
    (B, C_out OH OW / pool^2), NCHW.

    Args:
        Wc: the unrolled kernel (C k k [+ 1 bias row], C_out), as read from the conductances.
        accumulate: add to ``out`` instead of overwriting it.
        pool, arg: the max-pool window (1: none) and, when pooling, where each pooled unit's winning window
            position goes (float32, shaped like ``out``).
        block: tile rows. per, key, ctr: periphery and noise stream, as for :func:`crossbar_sim.kernels.mvm`;
            the read's rows are the B OH OW patches, so each pixel draws its own noise.
        row0, B_total: ``x`` holds samples ``row0 ..`` of a batch of ``B_total`` (noise is indexed by the pixel
            in the whole batch, so it does not depend on how the batch is split between threads).
        patches: scratch (B OH OW, C k k); pix: scratch (B OH OW, C_out); xb, yb: the scratch of ``mvm``.

    Returns:
        The noise counter after the read.
    """
    B = x.shape[0]
    P = OH * OW
    co = Wc.shape[1]
    im2col(x, C, H, W, k, stride, pad, OH, OW, patches)
    ctr = mvm(patches, Wc, pix, False, block, per, key, ctr, row0 * P, B_total * P, xb, yb)
    if not accumulate:
        out[:, :] = 0.0
    if pool > 1:
        _pool(pix, out, arg, B, co, OH, OW, pool)
        return ctr
    for b in range(B):
        for p in range(P):
            row = pix[b * P + p]
            for j in range(co):
                out[b, j * P + p] += row[j]
    return ctr


@njit(cache=True)
def _pool(pix, out, arg, B, co, OH, OW, q):
    """Adds the max of each q x q window of the (B OH OW, C_out) pixel rows to ``out`` (pooled NCHW) and
    records the winner's window position (row-major; the first on a tie, within ``TIE``) in ``arg``."""
    PH, PW = OH // q, OW // q
    for b in range(B):
        for j in range(co):
            for ph in range(PH):
                for pw in range(PW):
                    best = pix[b * OH * OW + ph * q * OW + pw * q, j]
                    at = 0
                    for dy in range(q):
                        for dx in range(q):
                            v = pix[b * OH * OW + (ph * q + dy) * OW + pw * q + dx, j]
                            if v > best + TIE * max(1.0, abs(best)):
                                best, at = v, dy * q + dx
                    u = (j * PH + ph) * PW + pw
                    out[b, u] += best
                    arg[b, u] = at


@njit(cache=True)
def _unpool(y, arg, pix, B, co, OH, OW, q):
    """The (B, C_out OH OW / q^2) pooled images ``y`` as (B OH OW, C_out) pixel rows: each value at its window's
    winner ``arg``, zeros elsewhere."""
    PH, PW = OH // q, OW // q
    pix[:, :] = 0.0
    for b in range(B):
        for j in range(co):
            for ph in range(PH):
                for pw in range(PW):
                    u = (j * PH + ph) * PW + pw
                    at = int(arg[b, u])
                    pix[b * OH * OW + (ph * q + at // q) * OW + pw * q + at % q, j] = y[b, u]


@njit(cache=True)
def conv_transpose_read(y, WTc, out, accumulate, C, H, W, k, stride, pad, OH, OW, pool, arg, block, per, key, ctr,
                        row0, B_total, pix, cols, xb, yb):
    """``out = conv^T(unpool(y))`` through the same conductances read backwards: (B, C_out OH OW / pool^2),
    already through the DAC, to (B, C H W).

    Args:
        WTc: the unrolled kernel transposed, (C_out, C k k), without the bias row (the transposed read drives
            the columns; the bias line is not an input there).
        pool, arg: the max-pool window and, when pooling, the winners recorded by the forward read.
        accumulate, row0, B_total: as for :func:`conv_read`.
        block: tile columns. pix: scratch (B OH OW, C_out); cols: scratch (B OH OW, C k k).

    Returns:
        The noise counter after the read.
    """
    B = y.shape[0]
    P = OH * OW
    co = WTc.shape[0]
    if pool > 1:
        _unpool(y, arg, pix, B, co, OH, OW, pool)
    else:
        for b in range(B):
            for p in range(P):
                row = pix[b * P + p]
                for j in range(co):
                    row[j] = y[b, j * P + p]
    ctr = mvm(pix, WTc, cols, False, block, per, key, ctr, row0 * P, B_total * P, xb, yb)
    if not accumulate:
        out[:, :] = 0.0
    col2im(cols, C, H, W, k, stride, pad, OH, OW, out)
    return ctr
