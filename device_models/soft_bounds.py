"""``soft_bounds``: the step shrinks linearly as the conductance nears the bound it moves towards.

The usual first-order model of filamentary RRAM and of aihwkit's ``SoftBoundsDevice`` (Fusi & Abbott 2007
soft-bounded synapses): an up pulse changes G by ``2 * step_up * (g_max - G) / (g_max - g_min)``, a down pulse
by ``2 * step_down * (G - g_min) / (g_max - g_min)``. Both equal the nominal step at mid-range, so ``bits``
keeps its meaning there; ``up_down`` makes them differ, which biases a device towards the conductance where
up and down steps balance.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from device_models.base import ROW_G_MAX, ROW_G_MIN, ROW_STEP_DOWN, ROW_STEP_UP, DeviceModel, noisy_step


@njit(cache=True)
def soft_bounds_pulse(g, n, P, k, write_noise, key, index):
    """Apply ``n`` soft-bounded pulses to device ``k`` (see :mod:`device_models.base`)."""
    lo = P[ROW_G_MIN, k]
    hi = P[ROW_G_MAX, k]
    span = hi - lo
    for j in range(abs(n)):
        if n > 0:
            d = 2.0 * P[ROW_STEP_UP, k] * (hi - g) / span
        else:
            d = -2.0 * P[ROW_STEP_DOWN, k] * (g - lo) / span
        g = noisy_step(g, d, j, lo, hi, write_noise, key, index)
    return g


class SoftBounds(DeviceModel):
    """Step proportional to the distance to the bound being approached."""

    name = "soft_bounds"
    pulse = soft_bounds_pulse

    def twin(self, g, direction, P, z, u):
        lo, hi = P[ROW_G_MIN], P[ROW_G_MAX]
        if direction > 0:
            d = 2.0 * P[ROW_STEP_UP] * (hi - g) / (hi - lo)
        else:
            d = -2.0 * P[ROW_STEP_DOWN] * (g - lo) / (hi - lo)
        return np.clip(g + d * (1.0 + self.params.write_noise * z), lo, hi)
