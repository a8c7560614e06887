"""``exp_step``: steps that shrink exponentially as the conductance moves in their direction.

The usual fit of filamentary RRAM pulse responses (aihwkit's ``ExpStepDevice``, fitted to Gong et al. 2018,
"Signal and noise extraction from analog memory elements for neuromorphic computing", Nat. Commun. 9, 2102).
With ``u`` the conductance normalised to [0, 1], an up pulse changes it by
``step_up * c(gamma_up) * exp(-gamma_up * (u - 1/2))`` and a down pulse by
``-step_down * c(gamma_down) * exp(-gamma_down * (1/2 - u))``, where ``c(gamma) = 2 sinh(gamma/2) / gamma``
makes a full sweep take 2**bits - 1 pulses on average, as for a linear device; ``gamma = 0`` is linear.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from device_models.base import (N_PARAMS, ROW_G_MAX, ROW_G_MIN, ROW_STEP_DOWN, ROW_STEP_UP, DeviceModel,
                                DeviceParams, noisy_step, out_of_range)

ROW_GAMMA_UP, ROW_GAMMA_DOWN = N_PARAMS, N_PARAMS + 1


@dataclass(frozen=True)
class ExpStepParams(DeviceParams):
    gamma_up: float = 2.0
    """Exponential shape of up steps, dimensionless (0: linear)."""
    gamma_down: float = 2.0
    """Exponential shape of down steps, dimensionless (0: linear)."""

    def check(self):
        return super().check() + [p for name in ("gamma_up", "gamma_down")
                                  for p in out_of_range(name, getattr(self, name), 0, 20)]


@njit(cache=True, inline="always")
def sweep_norm(gamma):
    """``2 sinh(gamma/2) / gamma``, 1 at gamma = 0."""
    return 1.0 if abs(gamma) < 1e-9 else 2.0 * math.sinh(0.5 * gamma) / gamma


@njit(cache=True)
def exp_step_pulse(g, n, P, k, write_noise, key, index):
    """Apply ``n`` exponential-step pulses to device ``k`` (see :mod:`device_models.base`)."""
    lo = P[ROW_G_MIN, k]
    hi = P[ROW_G_MAX, k]
    span = hi - lo
    gu = P[ROW_GAMMA_UP, k]
    gd = P[ROW_GAMMA_DOWN, k]
    for j in range(abs(n)):
        u = (g - lo) / span
        if n > 0:
            d = P[ROW_STEP_UP, k] * sweep_norm(gu) * math.exp(-gu * (u - 0.5))
        else:
            d = -P[ROW_STEP_DOWN, k] * sweep_norm(gd) * math.exp(-gd * (0.5 - u))
        g = noisy_step(g, d, j, lo, hi, write_noise, key, index)
    return g


class ExpStep(DeviceModel):
    """Exponentially shrinking steps, separate up and down shapes, hard bounds."""

    name = "exp_step"
    levels = "sweep"
    params_cls = ExpStepParams
    pulse = exp_step_pulse
    shape_params = ("gamma_up", "gamma_down")

    def twin(self, g, direction, P, z, u):
        lo, hi = P[ROW_G_MIN], P[ROW_G_MAX]
        x = (g - lo) / (hi - lo)

        def norm(gamma):
            safe = np.where(np.abs(gamma) < 1e-9, 1.0, gamma)
            return np.where(np.abs(gamma) < 1e-9, 1.0, 2.0 * np.sinh(0.5 * safe) / safe)

        if direction > 0:
            d = P[ROW_STEP_UP] * norm(P[ROW_GAMMA_UP]) * np.exp(-P[ROW_GAMMA_UP] * (x - 0.5))
        else:
            d = -P[ROW_STEP_DOWN] * norm(P[ROW_GAMMA_DOWN]) * np.exp(-P[ROW_GAMMA_DOWN] * (0.5 - x))
        return np.clip(g + d * (1.0 + self.params.write_noise * z), lo, hi)
