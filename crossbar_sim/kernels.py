"""Numba kernels of the relaxation: the settle loop over dense and convolutional blocks (the reads are in
:mod:`crossbar_sim.reads` and :mod:`crossbar_sim.conv`).

Kernels are plain functions over arrays and scalars; :mod:`crossbar_sim.engine` translates a network on
tiles into these arrays once, and :mod:`crossbar_sim.twins` holds the slow NumPy twin of each kernel.

Array conventions (all float32, C-contiguous, batch first):

* ``S``: every state layer, flattened one after the other; layer ``l`` (1..L) is the (B, n[l]) block
  starting at ``soff[l]``. ``Q`` is the same layout after the DAC (``Q is S`` when the DAC is off).
* ``edges``: one int64 row per connection block, ``EDGE_*`` columns: source and destination layer (src < dst),
  offsets ``woff`` into ``Wf`` and ``wtoff`` into ``WTf``, whether the block holds the destination's bias
  row, and the row of ``conv`` describing a convolutional block (-1: dense). With the cross-entropy readout its
  block (L -> L + 1) is the last row.
* ``conv``: int64 rows ``C, H, W, k, stride, pad, OH, OW, pool`` (:class:`crossbar_sim.conv.ConvGeometry`), one
  per convolutional block. Such a block is stored unrolled, (C k k + bias, C_out) at ``woff`` and (C_out, C k k)
  at ``wtoff``; its layers are images flattened per sample in NCHW order (n_src = C H W,
  n_dst = C_out OH OW / pool^2).
* A pooling block (pool > 1) is read forward whenever its source layer changes (at the start of a phase and
  after each update of that layer), into a stash in the scratch: the pooled output, which the destination's
  drive adds, and each window's winner, which the transposed read routes through. The feedback therefore
  always uses the winners of the source's current state, under every dynamics (for the coordinate dynamics
  this makes each source update a majorise-minimise step: the pooled coupling is convex in the source, so
  the energy still does not increase).
* ``Wf``: every block as read from its conductances, an (n_src + bias, n_dst) matrix at ``woff`` whose last
  row, if any, is the bias row (driven by the constant ``x_max``). With the cross-entropy readout, the blocks into
  the classes (layer L + 1) come last: the readout from L, then auxiliary readouts from intermediate layers,
  whose nudge is weighted by ``cfg[CFG_AUX]`` (1 if absent). ``WTf``: the same conductances in
  transposed layout, (n_dst, n_src) at ``wtoff``, without the bias row. Both are refreshed from one
  conductance array after every write, so a forward and a backward read see the same devices; the second
  layout only lets BLAS run both directions at full speed. A masked connection reads as 0.
* ``adj_ptr``, ``adj``: for state layer l, ``adj[adj_ptr[l]:adj_ptr[l + 1]]`` lists the blocks between l and
  another state layer, in block order (the read order, which fixes the noise stream).
* ``color``: colour of each state layer; the coordinate dynamics updates one colour at a time.
* ``per``: the periphery, indexed by ``PER_*``.
* ``cfg``: the phase, indexed by ``CFG_*``. ``CFG_OMEGA`` is the coordinate dynamics' over-relaxation factor
  (projected block SOR): a block moves to ``clip(s + omega (m - s))`` with ``m`` its unclipped block minimum;
  1 is exact block minimisation. Each block's energy (under the MSE loss; a pooling source's, majorised as
  above) is a separable quadratic of curvature 1 (1 + beta for the nudged output) in its own units, so any omega
  in (0, 2) still never raises the energy; the fixed points are the same. The other dynamics ignore it.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from crossbar_sim.conv import conv_read, conv_transpose_read
from crossbar_sim.reads import (N_PER, PER_ADC_RANGE, PER_ADC_STEPS, PER_ANALOG, PER_DAC_STEPS,  # noqa: F401
                                PER_READ_SIGMA, PER_TILE_COLS, PER_TILE_ROWS, PER_X_MAX, dac, mvm)

EDGE_SRC, EDGE_DST, EDGE_WOFF, EDGE_WTOFF, EDGE_BIAS, EDGE_CONV = range(6)
N_EDGE = 6
CFG_DYN, CFG_LOSS, CFG_T, CFG_BETA, CFG_EPS, CFG_HI, CFG_TOL, CFG_AUX, CFG_OMEGA = range(9)
N_CFG = 9
DYN_EULER, DYN_FIXED_POINT, DYN_COORDINATE = 0, 1, 2
DYNAMICS = {"euler": DYN_EULER, "fixed_point": DYN_FIXED_POINT, "coordinate": DYN_COORDINATE}
LOSS_MSE, LOSS_CE = 0, 1
LOSSES = {"mse": LOSS_MSE, "cross_entropy": LOSS_CE}
STATUS_OK, STATUS_NONFINITE = 0, 1


@njit(cache=True)
def _rows(A, off, width, b0, b1):
    """Rows b0..b1 of the (B, width) block of flat ``A`` that starts at ``off``."""
    return A[off + b0 * width: off + b1 * width].reshape(b1 - b0, width)


@njit(cache=True)
def _weights(Wf, off, rows, cols):
    return Wf[off: off + rows * cols].reshape(rows, cols)


@njit(cache=True)
def _drive(l, c, x, y, Q, Wf, WTf, n, soff, edges, conv, adj_ptr, adj, drive_in, has_in, pre, beta, loss, aux_w, per,
           key, ctr, xb, yb, ce, cbuf, stash, stash_off, noarg):
    """Everything that pushes on layer ``l`` for rows ``c = (b0, b1, B)``: the clamped input's drive, every
    block to another state layer (forward from below, transposed from above; a pooling block's forward from
    its stash), and the cross-entropy nudges of the readouts from ``l`` (an auxiliary one weighted by
    ``aux_w``). Writes the pre-activation into ``pre``; returns the noise counter."""
    b0, b1, B = c
    Bc = b1 - b0
    L = soff.size - 1
    rows = int(per[PER_TILE_ROWS])
    cols = int(per[PER_TILE_COLS])
    filled = has_in[l]
    if filled:
        pre[:, :] = drive_in
    for k in range(adj_ptr[l], adj_ptr[l + 1]):
        e = adj[k]
        src, dst = edges[e, EDGE_SRC], edges[e, EDGE_DST]
        if stash_off[e] >= 0:  # a pooling convolution
            out, arg = _stash(e, stash, stash_off, n, edges, Bc)
            if dst == l and filled:
                pre += out
            elif dst == l:
                pre[:, :] = out
            else:
                ctr = _conv_backward(e, Q, Wf, n, soff, edges, conv, b0, b1, B, pre, filled, cols, per, key, ctr,
                                     xb, yb, cbuf, arg)
        elif edges[e, EDGE_CONV] >= 0:
            if dst == l:
                ctr = _conv_forward(e, _rows(Q, soff[src], n[src], b0, b1), Wf, WTf, n, edges, conv, b0, B, pre,
                                    filled, rows, per, key, ctr, xb, yb, cbuf, noarg)
            else:
                ctr = _conv_backward(e, Q, Wf, n, soff, edges, conv, b0, b1, B, pre, filled, cols, per, key, ctr,
                                     xb, yb, cbuf, noarg)
        elif dst == l:  # from below, through the block as stored
            ctr = mvm(_rows(Q, soff[src], n[src], b0, b1), _weights(Wf, edges[e, EDGE_WOFF], n[src] + edges[e, EDGE_BIAS],
                      n[l]), pre, filled, rows, per, key, ctr, b0, B, xb, yb)
        else:  # from above, through the same conductances transposed
            ctr = mvm(_rows(Q, soff[dst], n[dst], b0, b1), _weights(WTf, edges[e, EDGE_WTOFF], n[dst], n[l]), pre,
                      filled, cols, per, key, ctr, b0, B, xb, yb)
        filled = True
    if not filled:
        pre[:, :] = 0.0
    if loss != LOSS_CE or beta == 0.0:
        return ctr
    for r in range(edges.shape[0]):
        if edges[r, EDGE_DST] == L + 1 and edges[r, EDGE_SRC] == l:
            ctr = _softmax_nudge(r, l, c, y, Q, Wf, WTf, n, soff, edges, pre, beta if l == L else beta * aux_w,
                                 per, key, ctr, xb, yb, ce)
    return ctr


@njit(cache=True)
def _softmax_nudge(r, l, c, y, Q, Wf, WTf, n, soff, edges, pre, weight, per, key, ctr, xb, yb, ce):
    """The nudge of softmax readout ``r`` (outside the dynamics, Laborieux 2021) on its layer ``l``:
    ``pre += weight * (y - p) @ V^T``, ``p`` the softmax of the readout's logits, both reads through the tiles."""
    b0, b1, B = c
    Bc = b1 - b0
    rows = int(per[PER_TILE_ROWS])
    cols = int(per[PER_TILE_COLS])
    k = n[edges[r, EDGE_DST]]
    logits = ce[: Bc * k].reshape(Bc, k)
    ctr = mvm(_rows(Q, soff[l], n[l], b0, b1), _weights(Wf, edges[r, EDGE_WOFF], n[l] + 1, k), logits, False,
              rows, per, key, ctr, b0, B, xb, yb)
    for b in range(Bc):
        mx = logits[b, 0]
        for j in range(1, k):
            mx = max(mx, logits[b, j])
        z = 0.0
        for j in range(k):
            logits[b, j] = math.exp(logits[b, j] - mx)
            z += logits[b, j]
        for j in range(k):
            logits[b, j] = y[b, j] - logits[b, j] / z
    err = ce[Bc * k: 2 * Bc * k]
    dac(logits.ravel(), err, per[PER_DAC_STEPS], -1.0, 1.0)
    fb = ce[2 * Bc * k: 2 * Bc * k + Bc * n[l]].reshape(Bc, n[l])
    ctr = mvm(err.reshape(Bc, k), _weights(WTf, edges[r, EDGE_WTOFF], k, n[l]), fb, False, cols, per, key, ctr,
              b0, B, xb, yb)
    for b in range(Bc):
        for j in range(n[l]):
            pre[b, j] += weight * fb[b, j]
    return ctr


@njit(cache=True)
def _stash(e, stash, stash_off, n, edges, Bc):
    """Pooling block ``e``'s stash for ``Bc`` rows: its last pooled forward read and the windows' winners."""
    m = n[edges[e, EDGE_DST]]
    o = stash_off[e]
    return stash[o: o + Bc * m].reshape(Bc, m), stash[o + Bc * m: o + 2 * Bc * m].reshape(Bc, m)


@njit(cache=True)
def _stash_offsets(n, edges, conv, Bc):
    """Offset of each pooling block's stash in the stash scratch (-1: not a pooling block)."""
    out = np.full(edges.shape[0], -1, np.int64)
    o = 0
    for e in range(edges.shape[0]):
        g = edges[e, EDGE_CONV]
        if g >= 0 and conv[g, 8] > 1:
            out[e] = o
            o += 2 * Bc * n[edges[e, EDGE_DST]]
    return out


@njit(cache=True)
def _refresh_pools(l, Q, Wf, WTf, n, soff, edges, conv, b0, b1, B, per, key, ctr, xb, yb, cbuf, stash, stash_off):
    """Read the pooling blocks out of state layer ``l`` forward into their stashes (after ``l`` changed)."""
    for e in range(edges.shape[0]):
        if stash_off[e] >= 0 and edges[e, EDGE_SRC] == l:
            out, arg = _stash(e, stash, stash_off, n, edges, b1 - b0)
            ctr = _conv_forward(e, _rows(Q, soff[l], n[l], b0, b1), Wf, WTf, n, edges, conv, b0, B, out, False,
                                int(per[PER_TILE_ROWS]), per, key, ctr, xb, yb, cbuf, arg)
    return ctr


@njit(cache=True)
def _conv_scratch(e, n, edges, conv, Bc, cbuf):
    """Geometry of convolutional block ``e`` and its image, patch and pixel scratch (flat) for ``Bc`` rows."""
    g = edges[e, EDGE_CONV]
    P = conv[g, 6] * conv[g, 7]
    patch = conv[g, 0] * conv[g, 3] * conv[g, 3]
    co = n[edges[e, EDGE_DST]] * conv[g, 8] * conv[g, 8] // P
    n_img = n[edges[e, EDGE_SRC]]
    cols = cbuf[: Bc * P * patch]
    o = Bc * P * patch
    pix = cbuf[o: o + Bc * P * co]
    o += Bc * P * co
    img = cbuf[o: o + Bc * n_img]
    return g, patch, co, img, cols, pix


@njit(cache=True)
def _conv_forward(e, xs, Wf, WTf, n, edges, conv, b0, B, out, accumulate, block, per, key, ctr, xb, yb, cbuf, arg):
    """Convolutional block ``e`` read forward from its source rows ``xs`` (rows b0.. of the batch) into ``out``
    (pooled, the winners into ``arg``, when the block pools). The product runs on the transposed layout."""
    g, patch, co, img, cols, pix = _conv_scratch(e, n, edges, conv, xs.shape[0], cbuf)
    W = _weights(Wf, edges[e, EDGE_WOFF], patch + edges[e, EDGE_BIAS], co)
    WT = _weights(WTf, edges[e, EDGE_WTOFF], co, patch)
    return conv_read(xs, W, WT, out, accumulate, conv[g, 0], conv[g, 1], conv[g, 2], conv[g, 3], conv[g, 4],
                     conv[g, 5], conv[g, 6], conv[g, 7], conv[g, 8], arg, block, per, key, ctr, b0, B, img, cols, pix,
                     xb, yb)


@njit(cache=True)
def _conv_backward(e, Q, Wf, n, soff, edges, conv, b0, b1, B, out, accumulate, block, per, key, ctr, xb, yb, cbuf,
                   arg):
    """Convolutional block ``e`` read backwards (the transposed convolution) from its destination layer,
    through the winners ``arg`` when it pools. The product runs on the stored layout, bias row left out."""
    dst = edges[e, EDGE_DST]
    g, patch, co, img, cols, pix = _conv_scratch(e, n, edges, conv, b1 - b0, cbuf)
    return conv_transpose_read(_rows(Q, soff[dst], n[dst], b0, b1), _weights(Wf, edges[e, EDGE_WOFF], patch, co),
                               out, accumulate, conv[g, 0], conv[g, 1], conv[g, 2], conv[g, 3], conv[g, 4],
                               conv[g, 5], conv[g, 6], conv[g, 7], conv[g, 8], arg, block, per, key, ctr, b0, B, img,
                               cols, pix, xb, yb)


@njit(cache=True)
def scratch_dims(n, edges, conv):
    """Per row of a chunk: the ``mvm`` scratch ``xb`` and ``yb``, the convolution scratch and the pooling
    stashes, in elements. A convolutional read has one row per output pixel, so its converters need P times
    the room."""
    nmax = 0
    for i in range(n.size):
        nmax = max(nmax, n[i])
    xm, ym, cm, sm = 1, nmax, 0, 0
    for e in range(edges.shape[0]):
        g = edges[e, EDGE_CONV]
        if g < 0:
            continue
        P = conv[g, 6] * conv[g, 7]
        patch = conv[g, 0] * conv[g, 3] * conv[g, 3]
        co = n[edges[e, EDGE_DST]] * conv[g, 8] * conv[g, 8] // P
        xm = max(xm, P)
        ym = max(ym, P * max(co, patch))
        cm = max(cm, P * (patch + co) + n[edges[e, EDGE_SRC]])
        if conv[g, 8] > 1:
            sm += 2 * n[edges[e, EDGE_DST]]
    return xm, ym, cm, sm


@njit(cache=True, fastmath=True)
def _update(s, pre, y, nudge_out, dyn, beta, eps, omega, hi, frozen, rowmax, rowsum, dbuf, dbits):
    """Move the unfrozen rows of one layer towards the block minimum (by ``omega`` times the way to it, see
    ``CFG_OMEGA``); track each row's largest and summed |change| in ``rowmax`` and ``rowsum``.

    Compiled with fast-math so that the per-row loops vectorise; a non-finite pre-activation is therefore
    detected afterwards (:func:`_all_finite`), not here. The largest change is taken over the bit patterns of
    the (non-negative) changes kept in ``dbuf``/``dbits`` (a float32 scratch and its int32 view): an integer
    max vectorises where a float max reduction does not.
    """
    B, m = s.shape
    a = np.float32(1.0 - eps)
    e = np.float32(eps)
    eb = np.float32(eps * beta)
    curv = 1.0 + beta  # curvature of the nudged output block's energy
    inv = np.float32(1.0 / curv if curv > 0.0 else 0.0)
    half_c = np.float32(0.5 * curv * hi)
    bb = np.float32(beta)
    top = np.float32(hi)
    zero = np.float32(0.0)
    w = np.float32(omega)
    sor = omega != 1.0
    for b in range(B):
        if frozen[b]:
            continue
        row, prow, yrow = s[b], pre[b], y[b]
        dsum = zero
        # One branch-free loop per case, so that each vectorises.
        if dyn == DYN_EULER and nudge_out:
            for j in range(m):
                old = row[j]
                v = min(max(a * old + e * prow[j] - eb * (old - yrow[j]), zero), top)
                dbuf[j] = abs(v - old)
                dsum += dbuf[j]
                row[j] = v
        elif dyn == DYN_EULER:
            for j in range(m):
                old = row[j]
                v = min(max(a * old + e * prow[j], zero), top)
                dbuf[j] = abs(v - old)
                dsum += dbuf[j]
                row[j] = v
        elif nudge_out and curv > 0.0 and sor:
            for j in range(m):
                old = row[j]
                v = min(max(old + w * ((prow[j] + bb * yrow[j]) * inv - old), zero), top)
                dbuf[j] = abs(v - old)
                dsum += dbuf[j]
                row[j] = v
        elif nudge_out and curv > 0.0:
            for j in range(m):
                old = row[j]
                v = min(max((prow[j] + bb * yrow[j]) * inv, zero), top)  # exact minimiser of the nudged block
                dbuf[j] = abs(v - old)
                dsum += dbuf[j]
                row[j] = v
        elif nudge_out:
            # beta <= -1: the block energy 1/2 (1 + beta) s^2 - (pre + beta y) s is linear or concave, so its
            # minimum over [0, hi] is an end: hi where that end's energy is below 0 (the energy at 0).
            for j in range(m):
                old = row[j]
                v = top if half_c * top - (prow[j] + bb * yrow[j]) * top < zero else zero
                dbuf[j] = abs(v - old)
                dsum += dbuf[j]
                row[j] = v
        elif sor:
            for j in range(m):
                old = row[j]
                v = min(max(old + w * (prow[j] - old), zero), top)
                dbuf[j] = abs(v - old)
                dsum += dbuf[j]
                row[j] = v
        else:
            for j in range(m):
                old = row[j]
                v = min(max(prow[j], zero), top)
                dbuf[j] = abs(v - old)
                dsum += dbuf[j]
                row[j] = v
        imax = np.int32(0)
        for j in range(m):
            imax = max(imax, dbits[j])
        dbits[0] = imax
        rowmax[b] = max(rowmax[b], dbuf[0])
        rowsum[b] += dsum


@njit(cache=True)
def _all_finite(a):
    for v in a:
        if not math.isfinite(v):
            return False
    return True


@njit(cache=True)
def _settle_rows(b0, b1, x, y, S, Q, Wf, WTf, n, soff, edges, conv, adj_ptr, adj, color, cfg, per, key, ctr, work,
                 stats):
    """The settle loop for batch rows b0..b1 (one thread's share); results go into ``stats`` (see settle)."""
    dyn = int(cfg[CFG_DYN])
    loss = int(cfg[CFG_LOSS])
    T = int(cfg[CFG_T])
    beta = cfg[CFG_BETA]
    eps = cfg[CFG_EPS]
    hi = cfg[CFG_HI]
    tol = cfg[CFG_TOL]
    aux_w = cfg[CFG_AUX] if cfg.size > CFG_AUX else 1.0
    omega = cfg[CFG_OMEGA] if cfg.size > CFG_OMEGA else 1.0
    B = x.shape[0]
    Bc = b1 - b0
    c = (b0, b1, B)
    # This thread's rows, typed as C-contiguous (a plain row slice would be typed 'A' and compiled twice).
    xc = _rows(x.reshape(-1), 0, x.shape[1], b0, b1)
    yc = _rows(y.reshape(-1), 0, y.shape[1], b0, b1)
    L = soff.size - 1
    analog = per[PER_ANALOG] != 0.0
    dac_steps = per[PER_DAC_STEPS]
    nmax = 0
    units = 0
    for i in range(n.size):
        nmax = max(nmax, n[i])
    for l in range(1, L + 1):
        units += n[l]
    # Scratch: pre-activations of every layer and the clamped input's drive of every layer (both layer-major,
    # like S), converter and CE buffers.
    poff = np.zeros(L + 1, np.int64)
    for l in range(1, L):
        poff[l + 1] = poff[l] + Bc * n[l]
    o = poff[L] + Bc * n[L]
    pre_all = work[:o]
    drive_all = work[o: 2 * o]
    o *= 2
    xm, ym, cm, sm = scratch_dims(n, edges, conv)
    stash = work[o: o + Bc * sm]
    o += Bc * sm
    stash_off = _stash_offsets(n, edges, conv, Bc)
    noarg = np.zeros((1, 1), np.float32)
    xb = work[o: o + Bc * xm]
    o += Bc * xm
    yb = work[o: o + Bc * ym]
    o += Bc * ym
    ce = work[o: o + 3 * Bc * nmax]
    o += 3 * Bc * nmax
    cbuf = work[o: o + Bc * cm]
    o += Bc * cm
    rowmax = work[o: o + Bc]
    rowsum = work[o + Bc: o + 2 * Bc]
    frozen = np.zeros(Bc, np.bool_)
    dbuf = np.empty(nmax, np.float32)
    dbits = dbuf.view(np.int32)
    steps_b = np.zeros(Bc, np.int64)
    last_max = np.zeros(Bc)
    last_mean = np.zeros(Bc)
    if analog:
        for l in range(1, L + 1):
            lo, hi_ = soff[l] + b0 * n[l], soff[l] + b1 * n[l]
            dac(S[lo:hi_], Q[lo:hi_], dac_steps, 0.0, hi)
    # The input is clamped for the whole phase, so its blocks are read once.
    has_in = np.zeros(L + 1, np.bool_)
    n_state_edges = 0  # the blocks of the dynamics come first; the readouts (into layer L + 1) last
    while n_state_edges < edges.shape[0] and edges[n_state_edges, EDGE_DST] <= L:
        n_state_edges += 1
    for e in range(n_state_edges):
        if edges[e, EDGE_SRC] == 0:
            l = edges[e, EDGE_DST]
            if edges[e, EDGE_CONV] >= 0:
                arg = _stash(e, stash, stash_off, n, edges, Bc)[1] if stash_off[e] >= 0 else noarg
                ctr = _conv_forward(e, xc, Wf, WTf, n, edges, conv, b0, B, _rows(drive_all, poff[l], n[l], 0, Bc),
                                    has_in[l], int(per[PER_TILE_ROWS]), per, key, ctr, xb, yb, cbuf, arg)
            else:
                ctr = mvm(xc, _weights(Wf, edges[e, EDGE_WOFF], n[0] + edges[e, EDGE_BIAS], n[l]),
                          _rows(drive_all, poff[l], n[l], 0, Bc), has_in[l], int(per[PER_TILE_ROWS]), per, key, ctr,
                          b0, B, xb, yb)
            has_in[l] = True
    for l in range(1, L + 1):
        ctr = _refresh_pools(l, Q, Wf, WTf, n, soff, edges, conv, b0, b1, B, per, key, ctr, xb, yb, cbuf, stash,
                             stash_off)
    n_colors = 1
    for l in range(1, L + 1):
        n_colors = max(n_colors, color[l] + 1)
    status = STATUS_OK
    for t in range(T):
        rowmax[:] = 0.0
        rowsum[:] = 0.0
        for phase in range(n_colors if dyn == DYN_COORDINATE else 1):
            # Coordinate: one colour after the other (exact block minimisation). Otherwise all at once.
            for l in range(1, L + 1):
                if dyn == DYN_COORDINATE and color[l] != phase:
                    continue
                ctr = _drive(l, c, x, yc, Q, Wf, WTf, n, soff, edges, conv, adj_ptr, adj,
                             _rows(drive_all, poff[l], n[l], 0, Bc), has_in, _rows(pre_all, poff[l], n[l], 0, Bc),
                             beta, loss, aux_w, per, key, ctr, xb, yb, ce, cbuf, stash, stash_off, noarg)
                if dyn == DYN_COORDINATE:
                    _update(_rows(S, soff[l], n[l], b0, b1), _rows(pre_all, poff[l], n[l], 0, Bc), yc,
                            l == L and loss == LOSS_MSE and beta != 0.0, dyn, beta, eps, omega, hi, frozen, rowmax,
                            rowsum, dbuf, dbits)
                    if analog:
                        lo, hi_ = soff[l] + b0 * n[l], soff[l] + b1 * n[l]
                        dac(S[lo:hi_], Q[lo:hi_], dac_steps, 0.0, hi)
                    ctr = _refresh_pools(l, Q, Wf, WTf, n, soff, edges, conv, b0, b1, B, per, key, ctr, xb, yb, cbuf,
                                         stash, stash_off)
            if dyn != DYN_COORDINATE:
                for l in range(1, L + 1):
                    _update(_rows(S, soff[l], n[l], b0, b1), _rows(pre_all, poff[l], n[l], 0, Bc), yc,
                            l == L and loss == LOSS_MSE and beta != 0.0, dyn, beta, eps, 1.0, hi, frozen, rowmax,
                            rowsum, dbuf, dbits)
                    if analog:
                        lo, hi_ = soff[l] + b0 * n[l], soff[l] + b1 * n[l]
                        dac(S[lo:hi_], Q[lo:hi_], dac_steps, 0.0, hi)
                for l in range(1, L + 1):
                    ctr = _refresh_pools(l, Q, Wf, WTf, n, soff, edges, conv, b0, b1, B, per, key, ctr, xb, yb, cbuf,
                                         stash, stash_off)
        active = 0
        for b in range(Bc):
            if frozen[b]:
                continue
            steps_b[b] = t + 1
            last_max[b] = rowmax[b]
            last_mean[b] = rowsum[b] / units
            if rowmax[b] < tol:
                frozen[b] = True
            else:
                active += 1
        if active == 0:
            break
    for l in range(1, L + 1):
        if not _all_finite(S[soff[l] + b0 * n[l]: soff[l] + b1 * n[l]]) or not _all_finite(
                _rows(pre_all, poff[l], n[l], 0, Bc).ravel()):
            status = STATUS_NONFINITE
    stats[0] = steps_b.max()
    stats[1] = steps_b.sum()
    stats[2] = last_max.max()
    stats[3] = last_mean.sum()
    stats[4] = status


@njit(cache=True, parallel=True)
def settle(x, y, S, Q, Wf, WTf, n, soff, edges, conv, adj_ptr, adj, color, cfg, per, key, ctr, work, chunks):
    """Relax the network to equilibrium: one call runs a whole phase.

    The batch is cut into ``chunks`` row blocks relaxed in parallel, each by one thread with no barrier
    between steps. Each sample stops on its own once its largest state change in a step is below ``tol``
    (its state is then frozen), and every random draw is indexed by the sample's row, so the blocks change
    a result only by the float rounding of the products (BLAS rounds a row differently in a call of other
    rows): a caller that wants the same numbers on any thread count fixes ``chunks`` by the batch size, as
    :func:`crossbar_sim.engine.settle_chunks` does.

    Args:
        x: (B, n[0]) float32 clamped input, already through the DAC.
        y: (B, n_target) float32 target (one-hot); used only when ``cfg[CFG_BETA] != 0``.
        S, Q: flat float32 states and their DAC image (see module docstring); ``S`` holds the initial state and
            receives the final one.
        Wf, WTf, n, soff, edges, conv, adj_ptr, adj, color: weights and layout (module docstring). ``n`` has L + 1
            entries (input and state layers), plus the class count when the loss is cross-entropy.
        cfg: float64 phase settings (``CFG_*``): dynamics, loss, max steps T, beta, Euler step, state bound, tol,
            and (optional, default 1) the weight of the auxiliary readouts' nudges.
        per: float64 periphery (``PER_*``).
        key, ctr: read-noise stream and the index of its first draw (uint64).
        work: flat float32 scratch of at least ``work_size(B, n, chunks, edges, conv)`` elements.

    Returns:
        (steps of the longest-running sample, steps summed over samples, largest |state change| in a
        sample's last step, mean |state change| in the samples' last steps, status).
    """
    B = x.shape[0]
    stats = np.zeros((chunks, 5))
    per_chunk = work.size // chunks
    for i in prange(chunks):
        b0 = i * B // chunks
        b1 = (i + 1) * B // chunks
        if b1 > b0:
            _settle_rows(b0, b1, x, y, S, Q, Wf, WTf, n, soff, edges, conv, adj_ptr, adj, color, cfg, per, key, ctr,
                         work[i * per_chunk: (i + 1) * per_chunk], stats[i])
    status = STATUS_OK
    for i in range(chunks):
        if stats[i, 4] != STATUS_OK:
            status = int(stats[i, 4])
    return (int(stats[:, 0].max()), int(stats[:, 1].sum()), stats[:, 2].max(), stats[:, 3].sum() / B, status)


def work_size(batch: int, sizes, chunks: int, edges=None, conv=None) -> int:
    """Scratch elements :func:`settle` needs for a batch, the layer sizes ``n``, a number of chunks and, with
    convolutional blocks, the edge and ``conv`` tables."""
    rows = -(-batch // chunks)
    nmax = max(sizes)
    xm, ym, cm, sm = 1, nmax, 0, 0
    if edges is not None and conv is not None and len(conv):
        xm, ym, cm, sm = scratch_dims(np.asarray(sizes, dtype=np.int64), edges, conv)
    return chunks * (rows * (2 * sum(sizes[1:]) + 2 + xm + ym + 3 * nmax + cm + sm) + 64)


# ---- the dense-only settle loop ---------------------------------------------------------------------------
# Numba compiles every call a kernel can reach, whatever the arrays at run time, and the convolution reads
# (im2col, pooling, grouped tile reads) more than double the settle loop's compile time. A network without
# convolutional blocks runs ``settle_dense``: the same source, compiled with the three functions that reach
# the convolution reads replaced by ones that do nothing (they are never called without convolutional blocks).
# Each copy has its own name, so Numba's on-disk cache keeps the two apart. Tests check both give the same
# numbers on dense networks.

@njit(cache=True)
def _no_conv_forward(e, xs, Wf, WTf, n, edges, conv, b0, B, out, accumulate, block, per, key, ctr, xb, yb, cbuf,
                     arg):
    return ctr


@njit(cache=True)
def _no_conv_backward(e, Q, Wf, n, soff, edges, conv, b0, b1, B, out, accumulate, block, per, key, ctr, xb, yb,
                      cbuf, arg):
    return ctr


@njit(cache=True)
def _no_refresh_pools(l, Q, Wf, WTf, n, soff, edges, conv, b0, b1, B, per, key, ctr, xb, yb, cbuf, stash,
                      stash_off):
    return ctr


def _dense_copies():
    """``_drive``, ``_settle_rows`` and ``settle`` compiled again over globals whose convolution calls are the
    no-op stand-ins above."""
    import types

    space = dict(globals())
    space.update(_conv_forward=_no_conv_forward, _conv_backward=_no_conv_backward, _refresh_pools=_no_refresh_pools)
    out = {}
    for name, options in (("_drive", {}), ("_settle_rows", {}), ("settle", {"parallel": True})):
        f = globals()[name].py_func
        copy = types.FunctionType(f.__code__, space, f"{name}_dense", f.__defaults__, f.__closure__)
        copy.__qualname__ = f"{name}_dense"
        copy.__doc__ = f.__doc__
        out[name] = space[name] = njit(cache=True, **options)(copy)
    return out["settle"]


settle_dense = _dense_copies()
