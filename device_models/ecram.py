"""``ecram``: electrochemical RAM, near-linear and symmetric, with many levels.

In ECRAM a gate pulse moves a fixed charge of ions into or out of the channel, so the conductance step is
nearly constant and the same up and down (Tang et al. 2018, "ECRAM as scalable synaptic cell for
high-speed, low-power neuromorphic computing", IEDM; Kim et al. 2019, "Metal-oxide based, CMOS-compatible
ECRAM for deep learning accelerator", IEDM). What is left is a weak linear dependence of the step on the
state, ``step * (1 - nonlinearity * (u - 1/2))`` up and ``step * (1 + nonlinearity * (u - 1/2))`` down
(``u`` the conductance normalised to [0, 1]), which is symmetric about mid-range.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from device_models.base import (N_PARAMS, ROW_G_MAX, ROW_G_MIN, ROW_STEP_DOWN, ROW_STEP_UP, DeviceModel,
                                DeviceParams, noisy_step, out_of_range)

ROW_NONLINEARITY = N_PARAMS


@dataclass(frozen=True)
class ECRAMParams(DeviceParams):
    bits: int = field(default=10, metadata={"lo": 1, "hi": 16})
    """Bit depth: 2**bits programmable levels (ECRAM reaches about a thousand)."""
    nonlinearity: float = 0.1
    """Relative change of the step across the range, dimensionless in [0, 1) (0: linear)."""

    def check(self):
        return super().check() + out_of_range("nonlinearity", self.nonlinearity, 0, 1, hi_open=True)


@njit(cache=True)
def ecram_pulse(g, n, P, k, write_noise, key, index):
    """Apply ``n`` near-linear pulses to device ``k`` (see :mod:`device_models.base`)."""
    lo = P[ROW_G_MIN, k]
    hi = P[ROW_G_MAX, k]
    a = P[ROW_NONLINEARITY, k]
    for j in range(abs(n)):
        c = (g - lo) / (hi - lo) - 0.5
        d = P[ROW_STEP_UP, k] * (1.0 - a * c) if n > 0 else -P[ROW_STEP_DOWN, k] * (1.0 + a * c)
        g = noisy_step(g, d, j, lo, hi, write_noise, key, index)
    return g


class ECRAM(DeviceModel):
    """Near-linear symmetric steps, many levels."""

    name = "ecram"
    levels = "sweep"
    params_cls = ECRAMParams
    pulse = ecram_pulse
    shape_params = ("nonlinearity",)

    def twin(self, g, direction, P, z, u):
        lo, hi = P[ROW_G_MIN], P[ROW_G_MAX]
        c = (g - lo) / (hi - lo) - 0.5
        a = P[ROW_NONLINEARITY]
        d = P[ROW_STEP_UP] * (1 - a * c) if direction > 0 else -P[ROW_STEP_DOWN] * (1 + a * c)
        return np.clip(g + d * (1.0 + self.params.write_noise * z), lo, hi)
