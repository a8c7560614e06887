"""Numba kernels of the relaxation: DAC, tiled analog matrix-vector product, and the settle loop.

Kernels are plain functions over arrays and scalars; :mod:`crossbar_sim.engine` translates a network on
tiles into these arrays once, and :mod:`crossbar_sim.twins` holds the slow NumPy twin of each kernel.

Array conventions (all float32, C-contiguous, batch first):

* ``S``: every state layer, flattened one after the other; layer ``l`` (1..L) is the (B, n[l]) block
  starting at ``soff[l]``. ``Q`` is the same layout after the DAC (``Q is S`` when the DAC is off).
* ``edges``: one int64 row per connection block, ``EDGE_*`` columns: source and destination layer (src < dst),
  offsets ``woff`` into ``Wf`` and ``wtoff`` into ``WTf``, and whether the block holds the destination's bias
  row. With the cross-entropy readout its block (L -> L + 1) is the last row.
* ``Wf``: every block as read from its conductances, an (n_src + bias, n_dst) matrix at ``woff`` whose last
  row, if any, is the bias row (driven by the constant ``x_max``). ``WTf``: the same conductances in
  transposed layout, (n_dst, n_src) at ``wtoff``, without the bias row. Both are refreshed from one
  conductance array after every write, so a forward and a backward read see the same devices; the second
  layout only lets BLAS run both directions at full speed. A masked connection reads as 0.
* ``adj_ptr``, ``adj``: for state layer l, ``adj[adj_ptr[l]:adj_ptr[l + 1]]`` lists the blocks between l and
  another state layer, in block order (the read order, which fixes the noise stream).
* ``color``: colour of each state layer; the coordinate dynamics updates one colour at a time.
* ``per``: the periphery, indexed by ``PER_*``.
* ``cfg``: the phase, indexed by ``CFG_*``.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from crossbar_sim.blas import gemm_rows
from crossbar_sim.rng import normal32

PER_ANALOG, PER_DAC_STEPS, PER_ADC_STEPS, PER_ADC_RANGE, PER_READ_SIGMA, PER_TILE_ROWS, PER_TILE_COLS, PER_X_MAX = range(8)
N_PER = 8
EDGE_SRC, EDGE_DST, EDGE_WOFF, EDGE_WTOFF, EDGE_BIAS = range(5)
CFG_DYN, CFG_LOSS, CFG_T, CFG_BETA, CFG_EPS, CFG_HI, CFG_TOL = range(7)
N_CFG = 7
DYN_EULER, DYN_FIXED_POINT, DYN_COORDINATE = 0, 1, 2
DYNAMICS = {"euler": DYN_EULER, "fixed_point": DYN_FIXED_POINT, "coordinate": DYN_COORDINATE}
LOSS_MSE, LOSS_CE = 0, 1
LOSSES = {"mse": LOSS_MSE, "cross_entropy": LOSS_CE}
STATUS_OK, STATUS_NONFINITE = 0, 1


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


@njit(cache=True)
def _rows(A, off, width, b0, b1):
    """Rows b0..b1 of the (B, width) block of flat ``A`` that starts at ``off``."""
    return A[off + b0 * width: off + b1 * width].reshape(b1 - b0, width)


@njit(cache=True)
def _weights(Wf, off, rows, cols):
    return Wf[off: off + rows * cols].reshape(rows, cols)


@njit(cache=True)
def _drive(l, c, x, y, Q, Wf, WTf, n, soff, edges, adj_ptr, adj, drive_in, has_in, pre, beta, loss, per, key, ctr,
           xb, yb, ce):
    """Everything that pushes on layer ``l`` for rows ``c = (b0, b1, B)``: the clamped input's drive, every
    block to another state layer (forward from below, transposed from above), and the cross-entropy nudge.
    Writes the pre-activation into ``pre``; returns the noise counter."""
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
        if dst == l:  # from below, through the block as stored
            ctr = mvm(_rows(Q, soff[src], n[src], b0, b1), _weights(Wf, edges[e, EDGE_WOFF], n[src] + edges[e, EDGE_BIAS],
                      n[l]), pre, filled, rows, per, key, ctr, b0, B, xb, yb)
        else:  # from above, through the same conductances transposed
            ctr = mvm(_rows(Q, soff[dst], n[dst], b0, b1), _weights(WTf, edges[e, EDGE_WTOFF], n[dst], n[l]), pre,
                      filled, cols, per, key, ctr, b0, B, xb, yb)
        filled = True
    if not filled:
        pre[:, :] = 0.0
    if l == L and loss == LOSS_CE and beta != 0.0:
        # Softmax readout outside the dynamics (Laborieux 2021): the nudge is beta * (y - p) @ V^T.
        r = edges.shape[0] - 1
        k = n[L + 1]
        logits = ce[: Bc * k].reshape(Bc, k)
        ctr = mvm(_rows(Q, soff[L], n[L], b0, b1), _weights(Wf, edges[r, EDGE_WOFF], n[L] + 1, k), logits, False,
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
        fb = ce[2 * Bc * k: 2 * Bc * k + Bc * n[L]].reshape(Bc, n[L])
        ctr = mvm(err.reshape(Bc, k), _weights(WTf, edges[r, EDGE_WTOFF], k, n[L]), fb, False, cols, per, key, ctr,
                  b0, B, xb, yb)
        for b in range(Bc):
            for j in range(n[L]):
                pre[b, j] += beta * fb[b, j]
    return ctr


@njit(cache=True, fastmath=True)
def _update(s, pre, y, nudge_out, dyn, beta, eps, hi, frozen, rowmax, rowsum, dbuf, dbits):
    """Move the unfrozen rows of one layer towards the block minimum; track each row's largest and summed
    |change| in ``rowmax`` and ``rowsum``.

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
def _settle_rows(b0, b1, x, y, S, Q, Wf, WTf, n, soff, edges, adj_ptr, adj, color, cfg, per, key, ctr, work,
                 stats):
    """The settle loop for batch rows b0..b1 (one thread's share); results go into ``stats`` (see settle)."""
    dyn = int(cfg[CFG_DYN])
    loss = int(cfg[CFG_LOSS])
    T = int(cfg[CFG_T])
    beta = cfg[CFG_BETA]
    eps = cfg[CFG_EPS]
    hi = cfg[CFG_HI]
    tol = cfg[CFG_TOL]
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
    xb = work[o: o + Bc]
    o += Bc
    yb = work[o: o + Bc * nmax]
    o += Bc * nmax
    ce = work[o: o + 3 * Bc * nmax]
    o += 3 * Bc * nmax
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
    n_state_edges = edges.shape[0] - (1 if loss == LOSS_CE else 0)
    for e in range(n_state_edges):
        if edges[e, EDGE_SRC] == 0:
            l = edges[e, EDGE_DST]
            ctr = mvm(xc, _weights(Wf, edges[e, EDGE_WOFF], n[0] + edges[e, EDGE_BIAS], n[l]),
                      _rows(drive_all, poff[l], n[l], 0, Bc), has_in[l], int(per[PER_TILE_ROWS]), per, key, ctr,
                      b0, B, xb, yb)
            has_in[l] = True
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
                ctr = _drive(l, c, x, yc, Q, Wf, WTf, n, soff, edges, adj_ptr, adj,
                             _rows(drive_all, poff[l], n[l], 0, Bc), has_in, _rows(pre_all, poff[l], n[l], 0, Bc),
                             beta, loss, per, key, ctr, xb, yb, ce)
                if dyn == DYN_COORDINATE:
                    _update(_rows(S, soff[l], n[l], b0, b1), _rows(pre_all, poff[l], n[l], 0, Bc), yc,
                                   l == L and loss == LOSS_MSE and beta != 0.0, dyn, beta, eps, hi, frozen, rowmax, rowsum, dbuf, dbits)
                    if analog:
                        lo, hi_ = soff[l] + b0 * n[l], soff[l] + b1 * n[l]
                        dac(S[lo:hi_], Q[lo:hi_], dac_steps, 0.0, hi)
            if dyn != DYN_COORDINATE:
                for l in range(1, L + 1):
                    _update(_rows(S, soff[l], n[l], b0, b1), _rows(pre_all, poff[l], n[l], 0, Bc), yc,
                                   l == L and loss == LOSS_MSE and beta != 0.0, dyn, beta, eps, hi, frozen, rowmax, rowsum, dbuf, dbits)
                    if analog:
                        lo, hi_ = soff[l] + b0 * n[l], soff[l] + b1 * n[l]
                        dac(S[lo:hi_], Q[lo:hi_], dac_steps, 0.0, hi)
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
def settle(x, y, S, Q, Wf, WTf, n, soff, edges, adj_ptr, adj, color, cfg, per, key, ctr, work, chunks):
    """Relax the network to equilibrium: one call runs a whole phase.

    The batch is cut into ``chunks`` row blocks relaxed in parallel, each by one thread with no barrier
    between steps. Each sample stops on its own once its largest state change in a step is below ``tol``
    (its state is then frozen), so results do not depend on the number of chunks or threads.

    Args:
        x: (B, n[0]) float32 clamped input, already through the DAC.
        y: (B, n_target) float32 target (one-hot); used only when ``cfg[CFG_BETA] != 0``.
        S, Q: flat float32 states and their DAC image (see module docstring); ``S`` holds the initial state and
            receives the final one.
        Wf, WTf, n, soff, edges, adj_ptr, adj, color: weights and layout (module docstring). ``n`` has L + 1
            entries (input and state layers), plus the class count when the loss is cross-entropy.
        cfg: float64 phase settings (``CFG_*``): dynamics, loss, max steps T, beta, Euler step, state bound, tol.
        per: float64 periphery (``PER_*``).
        key, ctr: read-noise stream and the index of its first draw (uint64).
        work: flat float32 scratch of at least ``work_size(B, n, chunks)`` elements.

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
            _settle_rows(b0, b1, x, y, S, Q, Wf, WTf, n, soff, edges, adj_ptr, adj, color, cfg, per, key, ctr,
                         work[i * per_chunk: (i + 1) * per_chunk], stats[i])
    status = STATUS_OK
    for i in range(chunks):
        if stats[i, 4] != STATUS_OK:
            status = int(stats[i, 4])
    return (int(stats[:, 0].max()), int(stats[:, 1].sum()), stats[:, 2].max(), stats[:, 3].sum() / B, status)


def work_size(batch: int, sizes, chunks: int) -> int:
    """Scratch elements :func:`settle` needs for a batch, the layer sizes ``n`` and a number of chunks."""
    rows = -(-batch // chunks)
    nmax = max(sizes)
    return chunks * (rows * (2 * sum(sizes[1:]) + 3 + 4 * nmax) + 64)
