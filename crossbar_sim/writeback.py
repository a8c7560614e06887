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
from device_models.base import ROW_G_MAX, ROW_G_MIN, ROW_STUCK

_NOISE_STREAM = np.uint64(0x5DEECE66D)


@njit(inline="always", cache=True)
def pulse_count(x, stochastic, cap, key, k):
    """Signed pulse count for ``x`` nominal steps: rounded to nearest, or stochastically with draw ``k``."""
    if stochastic:
        nf = math.floor(x + uniform(key, np.uint64(k)))
    else:
        nf = math.floor(x + 0.5)
    return int(min(max(nf, -cap), cap))


@njit(cache=True, parallel=True)
def write_pairs(dW, G, P, W, WT, pulses, dw_step, g_scale, stochastic, cap, write_noise, key, pulse_fn):
    """Apply the intended change ``dW`` (R, C) to the pairs, pulse by pulse, and refresh the read-out.

    Args:
        dW: (R, C) intended weight change, weight units.
        G: (2 * R * C,) float64 conductances, G+ first then G-, uS; updated in place.
        P: (N_PARAMS, 2 * R * C) per-device parameters (:mod:`device_models.base`).
        W, WT: read-out matrices (R, C) and (C, R - 1 or R) float32, refreshed for every pulsed pair.
        pulses: (2 * R * C,) int64 running pulse count per device.
        dw_step: nominal weight change of one pulse; g_scale: uS per weight unit.
        stochastic: stochastic rounding of ``dW / dw_step`` instead of round-to-nearest.
        cap: most pulses one pair gets in one write.
        write_noise, key, pulse_fn: the device's cycle-to-cycle noise, the noise stream, its pulse response.

    Returns:
        Pulses sent in this write.
    """
    R, C = dW.shape
    N = R * C
    n_t = WT.shape[1]
    noise_key = key ^ _NOISE_STREAM
    total = 0
    # Rows in parallel: every draw is indexed by its device, so the result does not depend on the threads.
    for i in prange(R):
        for j in range(C):
            k = i * C + j
            n = pulse_count(dW[i, j] / dw_step, stochastic, cap, key, k)
            if n == 0:
                continue
            kp = k
            km = N + k
            gp = G[kp]
            gm = G[km]
            if n > 0:
                up_room = P[ROW_G_MAX, kp] - gp
                down_room = gm - P[ROW_G_MIN, km]
                dev, m = (kp, n) if up_room >= down_room else (km, -n)
            else:
                down_room = gp - P[ROW_G_MIN, kp]
                up_room = P[ROW_G_MAX, km] - gm
                dev, m = (kp, n) if down_room >= up_room else (km, -n)
            pulses[dev] += abs(m)
            total += abs(m)
            if P[ROW_STUCK, dev] == 0.0:
                # Each device gets its own stream for this write; its pulses draw indices 0, 1, ...
                G[dev] = pulse_fn(G[dev], m, P, dev, write_noise, bits(noise_key, np.uint64(dev)), np.uint64(0))
            w = (G[kp] - G[km]) / g_scale
            W[i, j] = w
            if i < n_t:
                WT[j, i] = w
    return total
