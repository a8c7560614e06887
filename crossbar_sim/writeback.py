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

from crossbar_sim.rng import bits, uniform
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
    """``m`` pulses to device ``dev`` (counted even if it is stuck); a worn-out device sticks."""
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


@njit(cache=True, parallel=True)
def write_pairs(dW, G, P, W, WT, pulses, t_prog, cfg, key, pulse_fn):
    """Apply the intended change ``dW`` (R, C) to the pairs, pulse by pulse, and refresh the read-out.

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
    N = R * C
    n_t = WT.shape[1]
    noise_key = key ^ _NOISE_STREAM
    dw_step, g_scale = cfg[WB_DW_STEP], cfg[WB_G_SCALE]
    stochastic, cap = cfg[WB_STOCHASTIC] != 0.0, cfg[WB_CAP]
    set_only, refresh_at = cfg[WB_SET_ONLY] != 0.0, cfg[WB_REFRESH_AT]
    total = 0
    refresh = 0
    # Rows in parallel: every draw is indexed by its device, so the result does not depend on the threads.
    for i in prange(R):
        for j in range(C):
            k = i * C + j
            n = pulse_count(dW[i, j] / dw_step, stochastic, cap, key, k)
            if n == 0:
                continue
            kp = k
            km = N + k
            if set_only:
                # Only gradual up steps: a positive change SETs G+, a negative one SETs G-.
                dev, m = (kp, n) if n > 0 else (km, -n)
            elif n > 0:
                up_room = P[ROW_G_MAX, kp] - G[kp]
                down_room = G[km] - P[ROW_G_MIN, km]
                dev, m = (kp, n) if up_room >= down_room else (km, -n)
            else:
                down_room = G[kp] - P[ROW_G_MIN, kp]
                up_room = P[ROW_G_MAX, km] - G[km]
                dev, m = (kp, n) if down_room >= up_room else (km, -n)
            total += _send(G, P, pulses, t_prog, dev, m, cfg, noise_key, np.uint64(0), pulse_fn)
            if set_only and G[dev] > P[ROW_G_MIN, dev] + refresh_at * (P[ROW_G_MAX, dev] - P[ROW_G_MIN, dev]):
                # Refresh: read the difference, RESET both, SET the difference back into one device.
                diff = G[kp] - G[km]
                sent = _send(G, P, pulses, t_prog, kp, -1, cfg, noise_key, np.uint64(1 << 20), pulse_fn)
                sent += _send(G, P, pulses, t_prog, km, -1, cfg, noise_key, np.uint64(1 << 20), pulse_fn)
                target = kp if diff > 0 else km
                m = int(min(math.floor(abs(diff) / (dw_step * g_scale) + 0.5), 4 * cap))
                if m > 0:
                    sent += _send(G, P, pulses, t_prog, target, m, cfg, noise_key, np.uint64(2 << 20), pulse_fn)
                total += sent
                refresh += sent
            if cfg[WB_DRIFT] != 0.0:
                w = (G[kp] * drift_factor(P, t_prog, kp, cfg[WB_NOW], cfg[WB_T0])
                     - G[km] * drift_factor(P, t_prog, km, cfg[WB_NOW], cfg[WB_T0])) / g_scale
            else:
                w = (G[kp] - G[km]) / g_scale
            W[i, j] = w
            if i < n_t:
                WT[j, i] = w
    return total, refresh
