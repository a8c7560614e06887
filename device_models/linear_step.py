"""``linear_step``: a device with 2**bits equally spaced conductance levels.

Each pulse moves the conductance by one fixed step, up or down, and the device saturates hard at its bounds.
This is the textbook multi-level cell (the "ideal multi-level" device of NeuroSim-style studies); with
``write_noise``, ``d2d`` and ``up_down`` it becomes aihwkit's ``ConstantStepDevice``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from device_models.base import ROW_G_MAX, ROW_G_MIN, ROW_STEP_DOWN, ROW_STEP_UP, DeviceModel, noisy_step, round_to_levels


@njit(cache=True)
def linear_pulse(g, n, P, k, write_noise, key, index):
    """Apply ``n`` constant-size pulses to device ``k`` (see :mod:`device_models.base`)."""
    lo = P[ROW_G_MIN, k]
    hi = P[ROW_G_MAX, k]
    step = P[ROW_STEP_UP, k] if n > 0 else -P[ROW_STEP_DOWN, k]
    if write_noise == 0.0:
        return min(max(g + abs(n) * step, lo), hi)
    for j in range(abs(n)):
        g = noisy_step(g, step, j, lo, hi, write_noise, key, index)
    return g


class LinearStep(DeviceModel):
    """Equally spaced levels, constant step, hard bounds."""

    name = "linear_step"
    levels = "exact"
    pulse = linear_pulse


    def twin(self, g, direction, P, z, u):
        step = P[ROW_STEP_UP] if direction > 0 else -P[ROW_STEP_DOWN]
        return np.clip(g + step * (1.0 + self.params.write_noise * z), P[ROW_G_MIN], P[ROW_G_MAX])

    def program(self, target: np.ndarray, P: np.ndarray) -> np.ndarray:
        """Round to the device's own level grid (direct setting, no verify)."""
        return round_to_levels(target, P)
