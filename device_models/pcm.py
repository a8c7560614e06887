"""``pcm``: phase-change memory, gradual SET and abrupt RESET.

A SET pulse crystallises a little more of the cell, so the conductance rises in steps that shrink as it
saturates; a RESET pulse melts and quenches the cell back to the amorphous, low-conductance state in one go
(Burr et al. 2015, "Experimental demonstration and tolerancing of a large-scale neural network (165 000
synapses) using phase-change memory as the synaptic weight element", IEEE TED 62, 3498; Nandakumar et al.
2020, "Mixed-precision deep learning based on computational memory", Front. Neurosci. 14, 406).

Here a SET (up) pulse changes G by ``step_up * c(gamma_set) * exp(-gamma_set * (u - 1/2))`` (``u`` the
conductance normalised to [0, 1], ``c`` as in ``exp_step``) and any number of down pulses RESET the device to
g_min. A pair of PCM devices therefore learns by SET pulses only (up on G+ or up on G-); when a device passes
``refresh_at`` of its range, the write-back refreshes the pair: it reads the difference, RESETs both and
programs the difference back into one device with SET pulses. Every pulse of a refresh is counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from crossbar_sim.rng import normal
from device_models.base import N_PARAMS, ROW_G_MAX, ROW_G_MIN, ROW_STEP_UP, DeviceModel, DeviceParams
from device_models.exp_step import sweep_norm

ROW_GAMMA_SET = N_PARAMS


@dataclass(frozen=True)
class PCMParams(DeviceParams):
    gamma_set: float = 3.0
    """Exponential shape of the SET steps, dimensionless (larger: earlier saturation)."""
    refresh_at: float = 0.9
    """Fraction of the range above which a device triggers a refresh of its pair, in (0, 1]."""

    def check(self):
        problems = super().check()
        if not (0.0 <= self.gamma_set <= 20.0):
            problems.append(("gamma_set", f"expected a number from 0 to 20, got {self.gamma_set}"))
        if not (0.0 < self.refresh_at <= 1.0):
            problems.append(("refresh_at", f"expected a number in (0, 1], got {self.refresh_at}"))
        return problems


@njit(cache=True)
def pcm_pulse(g, n, P, k, write_noise, key, index):
    """``n > 0``: gradual SET pulses; ``n < 0``: RESET to g_min (see :mod:`device_models.base`)."""
    lo = P[ROW_G_MIN, k]
    hi = P[ROW_G_MAX, k]
    if n < 0:
        return lo
    gamma = P[ROW_GAMMA_SET, k]
    for j in range(n):
        u = (g - lo) / (hi - lo)
        d = P[ROW_STEP_UP, k] * sweep_norm(gamma) * math.exp(-gamma * (u - 0.5))
        if write_noise != 0.0:
            d *= 1.0 + write_noise * normal(key, index + np.uint64(2 * j))
        g = min(max(g + d, lo), hi)
    return g


class PCM(DeviceModel):
    """Gradual SET, abrupt RESET; pairs learn by SET pulses and are refreshed."""

    name = "pcm"
    levels = "sweep"
    symmetric = False
    params_cls = PCMParams
    pulse = pcm_pulse
    shape_params = ("gamma_set",)
    set_only = True

    def twin(self, g, direction, P, z, u):
        lo, hi = P[ROW_G_MIN], P[ROW_G_MAX]
        if direction < 0:
            return lo.copy()
        gamma = P[ROW_GAMMA_SET]
        x = (g - lo) / (hi - lo)
        safe = np.where(np.abs(gamma) < 1e-9, 1.0, gamma)
        norm = np.where(np.abs(gamma) < 1e-9, 1.0, 2.0 * np.sinh(0.5 * safe) / safe)
        d = P[ROW_STEP_UP] * norm * np.exp(-gamma * (x - 0.5))
        return np.clip(g + d * (1.0 + self.params.write_noise * z), lo, hi)
