"""Write-back: an intended weight change becomes integer pulses on each differential pair.

The controller is open loop in step size and closed loop in choice: it converts ``dW`` into a pulse count
with the *nominal* step (it cannot know each device's own step), rounding deterministically (``round``) or
stochastically (``stochastic``, unbiased in expectation); then, for each pair, it pulses the device that has
more headroom in the needed direction (a positive change is an up pulse on G+ or a down pulse on G-). The
device answers with its own response: its step at its present conductance, up/down asymmetry,
cycle-to-cycle noise and bounds, or nothing if stuck.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from crossbar_sim.rng import bits, popcount, uniform
from device_models.base import ROW_G_MAX, ROW_G_MIN, ROW_NU, ROW_STUCK

_NOISE_STREAM = np.uint64(0x5DEECE66D)


@njit(inline="always", cache=True)
def pulse_count(x, stochastic, cap, key, k):
    """Signed pulse count for ``x`` nominal steps: rounded to nearest, or stochastically with draw ``k``."""
    if stochastic:
        nf = math.floor(x + uniform(key, np.uint64(k)))
    else:
        nf = math.floor(x + 0.5)
    return int(min(max(nf, -cap), cap))


(WB_DW_STEP, WB_G_SCALE, WB_STOCHASTIC, WB_CAP, WB_WRITE_NOISE, WB_ENDURANCE, WB_SET_ONLY, WB_REFRESH_AT,
 WB_DRIFT, WB_NOW, WB_T0) = range(11)
N_WB = 11


@njit(cache=True, inline="always")
def drift_factor(P, t_prog, dev, now, t0):
    """G(now) / G(last pulse) of a drifting device: (max(now - t_prog, t0) / t0)^(-nu)."""
    return (max(now - t_prog[dev], t0) / t0) ** (-P[ROW_NU, dev])


@njit(cache=True, parallel=True)
def drift_readout(G, P, t_prog, W, WT, g_scale, now, t0):
    """Refresh the read-out matrices with every device's conductance drifted to time ``now`` (s)."""
    R, C = W.shape
    N = R * C
    n_t = WT.shape[1]
    for i in prange(R):
        for j in range(C):
            k = i * C + j
            w = (G[k] * drift_factor(P, t_prog, k, now, t0) - G[N + k] * drift_factor(P, t_prog, N + k, now, t0)) / g_scale
            W[i, j] = w
            if i < n_t:
                WT[j, i] = w


@njit(cache=True, inline="always")
def _send(G, P, pulses, t_prog, dev, m, cfg, noise_key, salt, pulse_fn):
    """``m`` pulses to device ``dev`` (counted even if it is stuck); a worn-out device sticks. An absent device
    (a masked connection, ``P[ROW_STUCK] < 0``) gets nothing."""
    if P[ROW_STUCK, dev] < 0.0:
        return 0
    pulses[dev] += abs(m)
    if cfg[WB_DRIFT] != 0.0:
        # The pulse acts on the drifted conductance, and the device's drift starts again.
        G[dev] *= drift_factor(P, t_prog, dev, cfg[WB_NOW], cfg[WB_T0])
        t_prog[dev] = cfg[WB_NOW]
    if P[ROW_STUCK, dev] == 0.0:
        # Each device gets its own stream for this write; its pulses draw indices 0, 1, ...
        G[dev] = pulse_fn(G[dev], m, P, dev, cfg[WB_WRITE_NOISE], bits(noise_key, np.uint64(dev)), salt)
        if cfg[WB_ENDURANCE] > 0 and pulses[dev] >= cfg[WB_ENDURANCE]:
            P[ROW_STUCK, dev] = 1.0
    return abs(m)


@njit(cache=True, inline="always")
def _write_pair(i, j, n, burst, G, P, W, WT, pulses, t_prog, cfg, noise_key, pulse_fn):
    """``n`` signed pulses to pair (i, j): choose the device, send, refresh a SET-only pair if needed, and
    update the pair's read-out. ``burst`` numbers the write so that its noise draws are its own.

    Returns (pulses sent, of which pulses of a refresh).
    """
    C = W.shape[1]
    N = W.shape[0] * C
    k = i * C + j
    kp = k
    km = N + k
    base = np.uint64(burst) << np.uint64(32)
    if cfg[WB_SET_ONLY] != 0.0:
        # Only gradual up steps: a positive change SETs G+, a negative one SETs G-.
        dev, m = (kp, n) if n > 0 else (km, -n)
    elif n > 0:
        dev, m = (kp, n) if P[ROW_G_MAX, kp] - G[kp] >= G[km] - P[ROW_G_MIN, km] else (km, -n)
    else:
        dev, m = (kp, n) if G[kp] - P[ROW_G_MIN, kp] >= P[ROW_G_MAX, km] - G[km] else (km, -n)
    sent = _send(G, P, pulses, t_prog, dev, m, cfg, noise_key, base, pulse_fn)
    refresh = 0
    if cfg[WB_SET_ONLY] != 0.0 and G[dev] > P[ROW_G_MIN, dev] + cfg[WB_REFRESH_AT] * (P[ROW_G_MAX, dev] - P[ROW_G_MIN, dev]):
        # Refresh: read the difference, RESET both, SET the difference back into one device.
        diff = G[kp] - G[km]
        refresh = _send(G, P, pulses, t_prog, kp, -1, cfg, noise_key, base + np.uint64(1 << 28), pulse_fn)
        refresh += _send(G, P, pulses, t_prog, km, -1, cfg, noise_key, base + np.uint64(1 << 28), pulse_fn)
        m = int(min(math.floor(abs(diff) / (cfg[WB_DW_STEP] * cfg[WB_G_SCALE]) + 0.5), 4 * cfg[WB_CAP]))
        if m > 0:
            refresh += _send(G, P, pulses, t_prog, kp if diff > 0 else km, m, cfg, noise_key,
                             base + np.uint64(2 << 28), pulse_fn)
    if cfg[WB_DRIFT] != 0.0:
        w = (G[kp] * drift_factor(P, t_prog, kp, cfg[WB_NOW], cfg[WB_T0])
             - G[km] * drift_factor(P, t_prog, km, cfg[WB_NOW], cfg[WB_T0])) / cfg[WB_G_SCALE]
    else:
        w = (G[kp] - G[km]) / cfg[WB_G_SCALE]
    W[i, j] = w
    if i < WT.shape[1]:
        WT[j, i] = w
    return sent + refresh, refresh


# Kernels that take the device's pulse function as an argument are not cached on disk: Numba keys such an
# entry on the function object of the process that compiled it, so it never hits in another process, and
# re-saving an index that holds such keys can fail ("underlying object has vanished"). They compile once per
# process and model instead.
@njit(parallel=True)
def write_pairs(dW, G, P, W, WT, pulses, t_prog, cfg, key, pulse_fn):
    """Apply the intended change ``dW`` (R, C) to the pairs as counted pulses, and refresh the read-out.

    Args:
        dW: (R, C) intended weight change, weight units.
        G: (2 * R * C,) float64 conductances, G+ first then G-, uS; updated in place.
        P: (rows, 2 * R * C) per-device parameters (:mod:`device_models.base`); a worn-out device is marked stuck.
        W, WT: read-out matrices (R, C) and (C, R - 1 or R) float32, refreshed for every pulsed pair.
        pulses: (2 * R * C,) int64 running pulse count per device.
        t_prog: (2 * R * C,) float64 time of each device's last pulse, s (used when the devices drift).
        cfg: float64 settings, indexed by ``WB_*``: nominal weight change of one pulse, uS per weight unit,
            stochastic rounding (0/1), most pulses per pair and write, the device's cycle-to-cycle noise, its
            endurance (0: unlimited), SET-only pairs with refresh (0/1), the refresh threshold, drift (0/1),
            the present time and the drift's t0 (s).
        key, pulse_fn: the write's random stream and the device's pulse response.

    Returns:
        (pulses sent in this write, of which pulses of pair refreshes).
    """
    R, C = dW.shape
    noise_key = key ^ _NOISE_STREAM
    stochastic, cap = cfg[WB_STOCHASTIC] != 0.0, cfg[WB_CAP]
    total = 0
    refresh = 0
    # Rows in parallel: every draw is indexed by its device, so the result does not depend on the threads.
    for i in prange(R):
        for j in range(C):
            n = pulse_count(dW[i, j] / cfg[WB_DW_STEP], stochastic, cap, key, i * C + j)
            if n != 0:
                a, b = _write_pair(i, j, n, 0, G, P, W, WT, pulses, t_prog, cfg, noise_key, pulse_fn)
                total += a
                refresh += b
    return total, refresh


@njit(parallel=True)  # not cached: see write_pairs
def train_pairs(row_bits, col_bits, signs, G, P, W, WT, pulses, t_prog, cfg, key, pulse_fn):
    """Fully parallel stochastic update (Gokmen & Vlasov 2016; aihwkit's pulse trains).

    For each update event ``s`` every row ``i`` fires a pulse stream ``row_bits[s, i]`` and every column ``j``
    a stream ``col_bits[s, j]`` (up to 64 time slots, one bit each); a device receives a pulse in each slot
    where its row and column streams coincide, so pair (i, j) gets ``popcount(row & col)`` pulses of sign
    ``signs[s]``. Events are applied in order; pairs in parallel.

    Returns:
        (pulses sent, of which pulses of pair refreshes).
    """
    R, C = W.shape
    noise_key = key ^ _NOISE_STREAM
    total = 0
    refresh = 0
    for i in prange(R):
        for j in range(C):
            for s in range(signs.size):
                n = popcount(row_bits[s, i] & col_bits[s, j])
                if n != 0:
                    a, b = _write_pair(i, j, int(n) * signs[s], s, G, P, W, WT, pulses, t_prog, cfg, noise_key,
                                       pulse_fn)
                    total += a
                    refresh += b
    return total, refresh


@njit(cache=True)
def pulse_streams(prob, bl, key, salt):
    """Bernoulli(prob) pulse streams of ``bl`` slots, one uint64 per entry of ``prob`` (2D)."""
    S, M = prob.shape
    out = np.zeros((S, M), np.uint64)
    for s in range(S):
        for m in range(M):
            p = prob[s, m]
            if p <= 0.0:
                continue
            word = np.uint64(0)
            base = np.uint64(((salt + s) * M + m) * 64)
            for t in range(bl):
                if uniform(key, base + np.uint64(t)) < p:
                    word |= np.uint64(1) << np.uint64(t)
            out[s, m] = word
    return out
