"""``pow_step``: steps that follow a power of the distance to the bound being approached.

aihwkit's ``PowStepDevice`` family: with ``u`` the conductance normalised to [0, 1], an up pulse changes it by
``step_up * (2 (1 - u))**gamma_up`` and a down pulse by ``-step_down * (2 u)**gamma_down``. Both equal the
nominal step at mid-range; ``gamma = 0`` is linear, ``gamma = 1`` is ``soft_bounds``, larger values saturate
sooner. Up and down shapes are separate, which makes the device's symmetry point move away from mid-range.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from device_models.base import (N_PARAMS, ROW_G_MAX, ROW_G_MIN, ROW_STEP_DOWN, ROW_STEP_UP, DeviceModel,
                                DeviceParams, noisy_step, out_of_range)

ROW_GAMMA_UP, ROW_GAMMA_DOWN = N_PARAMS, N_PARAMS + 1


@dataclass(frozen=True)
class PowStepParams(DeviceParams):
    gamma_up: float = 0.5
    """Power of the distance to g_max in the up step, dimensionless (0: linear, 1: soft bounds)."""
    gamma_down: float = 0.5
    """Power of the distance to g_min in the down step, dimensionless."""

    def check(self):
        return super().check() + [p for name in ("gamma_up", "gamma_down")
                                  for p in out_of_range(name, getattr(self, name), 0, 10)]


@njit(cache=True)
def pow_step_pulse(g, n, P, k, write_noise, key, index):
    """Apply ``n`` power-law pulses to device ``k`` (see :mod:`device_models.base`)."""
    lo = P[ROW_G_MIN, k]
    hi = P[ROW_G_MAX, k]
    span = hi - lo
    for j in range(abs(n)):
        u = (g - lo) / span
        if n > 0:
            d = P[ROW_STEP_UP, k] * (2.0 * max(1.0 - u, 0.0)) ** P[ROW_GAMMA_UP, k]
        else:
            d = -P[ROW_STEP_DOWN, k] * (2.0 * max(u, 0.0)) ** P[ROW_GAMMA_DOWN, k]
        g = noisy_step(g, d, j, lo, hi, write_noise, key, index)
    return g


class PowStep(DeviceModel):
    """Power-law steps, separate up and down shapes, hard bounds."""

    name = "pow_step"
    params_cls = PowStepParams
    pulse = pow_step_pulse
    shape_params = ("gamma_up", "gamma_down")

    def twin(self, g, direction, P, z, u):
        lo, hi = P[ROW_G_MIN], P[ROW_G_MAX]
        x = (g - lo) / (hi - lo)
        if direction > 0:
            d = P[ROW_STEP_UP] * (2.0 * np.maximum(1.0 - x, 0.0)) ** P[ROW_GAMMA_UP]
        else:
            d = -P[ROW_STEP_DOWN] * (2.0 * np.maximum(x, 0.0)) ** P[ROW_GAMMA_DOWN]
        return np.clip(g + d * (1.0 + self.params.write_noise * z), lo, hi)
