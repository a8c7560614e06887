"""An example crossbar-sim device plugin: steps that fade out smoothly (tanh) near the bound approached.

Install it next to crossbar-sim (``pip install examples/plugin_device``) and use it in any scenario as
``hardware.device: {model: tanh_step, sharpness: 6.0}``.
"""
from dataclasses import dataclass

import numpy as np
from numba import njit

from device_models.base import (N_PARAMS, ROW_G_MAX, ROW_G_MIN, ROW_STEP_DOWN, ROW_STEP_UP, DeviceModel, DeviceParams,
                                noisy_step, out_of_range)

ROW_SHARPNESS = N_PARAMS  # the first row after the common ones holds our shape parameter


@dataclass(frozen=True)
class TanhParams(DeviceParams):
    sharpness: float = 6.0
    """How abruptly the step fades near a bound, dimensionless (larger: flatter middle, sharper edges)."""

    def check(self):
        return super().check() + out_of_range("sharpness", self.sharpness, 0, 100, lo_open=True)


@njit(cache=True)
def tanh_pulse(g, n, P, k, write_noise, key, index):
    lo, hi = P[ROW_G_MIN, k], P[ROW_G_MAX, k]
    s = P[ROW_SHARPNESS, k]
    step = (P[ROW_STEP_UP, k] if n > 0 else -P[ROW_STEP_DOWN, k]) / np.tanh(0.5 * s)  # nominal at mid-range
    for j in range(abs(n)):
        u = (g - lo) / (hi - lo)
        room = 1.0 - u if n > 0 else u  # distance to the bound we move towards
        d = step * np.tanh(s * room)
        g = noisy_step(g, d, j, lo, hi, write_noise, key, index)
    return g


class TanhStep(DeviceModel):
    """Nominal steps in mid-range that fade out smoothly near the bounds."""

    name = "tanh_step"
    params_cls = TanhParams
    pulse = tanh_pulse
    shape_params = ("sharpness",)

    def twin(self, g, direction, P, z, u):
        lo, hi = P[ROW_G_MIN], P[ROW_G_MAX]
        x = (g - lo) / (hi - lo)
        room = 1.0 - x if direction > 0 else x
        step = P[ROW_STEP_UP] if direction > 0 else -P[ROW_STEP_DOWN]
        d = step * np.tanh(P[ROW_SHARPNESS] * room) / np.tanh(0.5 * P[ROW_SHARPNESS])
        return np.clip(g + d * (1.0 + self.params.write_noise * z), lo, hi)
