"""``pcm``: phase-change memory, gradual SET and abrupt RESET.

A SET pulse crystallises a little more of the cell, so the conductance rises in steps that shrink as it
saturates; a RESET pulse melts and quenches the cell back to the amorphous, low-conductance state in one go
(Burr et al. 2015, "Experimental demonstration and tolerancing of a large-scale neural network (165 000
synapses) using phase-change memory as the synaptic weight element", IEEE TED 62, 3498; Nandakumar et al.
2020, "Mixed-precision deep learning based on computational memory", Front. Neurosci. 14, 406).

Here a SET (up) pulse changes G by ``step_up * (1 + set_a * exp(-set_gamma * u))`` (``u`` the conductance
normalised to [0, 1]; the law of aihwkit's ExpStep fit to Nandakumar et al. 2020, whose values are the
defaults: the first SET step after a RESET is 28 nominal steps, about 14% of the range, and the device
saturates after about 70 pulses) and any number of down pulses RESET the device to g_min. ``bits``/``levels``
set the nominal step, the smallest change the periphery counts with. A pair of PCM devices therefore learns by SET pulses only (up on G+ or up on G-); when a device passes
``refresh_at`` of its range, the write-back refreshes the pair: it reads the difference, RESETs both and
programs the difference back into one device with SET pulses. Every pulse of a refresh is counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from device_models.base import (N_PARAMS, ROW_G_MAX, ROW_G_MIN, ROW_STEP_UP, DeviceModel, DeviceParams, noisy_step,
                                out_of_range)
ROW_SET_A, ROW_SET_GAMMA = N_PARAMS, N_PARAMS + 1


@dataclass(frozen=True)
class PCMParams(DeviceParams):
    set_a: float = 27.235
    """Extra SET step at g_min, in nominal steps (0: linear SET), dimensionless."""
    set_gamma: float = 5.0
    """Decay of the extra SET step across the normalised range, dimensionless."""
    refresh_at: float = 0.9
    """Fraction of the range above which a device triggers a refresh of its pair, in (0, 1]."""

    def check(self):
        return (super().check() + out_of_range("set_a", self.set_a, 0, 1000)
                + out_of_range("set_gamma", self.set_gamma, 0, 50)
                + out_of_range("refresh_at", self.refresh_at, 0, 1, lo_open=True))


@njit(cache=True)
def pcm_pulse(g, n, P, k, write_noise, key, index):
    """``n > 0``: gradual SET pulses; ``n < 0``: RESET to g_min (see :mod:`device_models.base`)."""
    lo = P[ROW_G_MIN, k]
    hi = P[ROW_G_MAX, k]
    if n < 0:
        return lo
    a = P[ROW_SET_A, k]
    gamma = P[ROW_SET_GAMMA, k]
    for j in range(n):
        u = (g - lo) / (hi - lo)
        d = P[ROW_STEP_UP, k] * (1.0 + a * math.exp(-gamma * u))
        g = noisy_step(g, d, j, lo, hi, write_noise, key, index)
    return g


class PCM(DeviceModel):
    """Gradual SET, abrupt RESET; pairs learn by SET pulses and are refreshed."""

    name = "pcm"
    levels = "mid_step"
    symmetric = False
    params_cls = PCMParams
    pulse = pcm_pulse
    shape_params = ("set_a", "set_gamma")
    set_only = True

    def mid_step(self) -> float:
        """The SET step at mid-range, uS."""
        p = self.params
        return self.nominal_step() * (1.0 + p.up_down) * (1.0 + p.set_a * math.exp(-0.5 * p.set_gamma))

    def twin(self, g, direction, P, z, u):
        lo, hi = P[ROW_G_MIN], P[ROW_G_MAX]
        if direction < 0:
            return lo.copy()
        x = (g - lo) / (hi - lo)
        d = P[ROW_STEP_UP] * (1.0 + P[ROW_SET_A] * np.exp(-P[ROW_SET_GAMMA] * x))
        return np.clip(g + d * (1.0 + self.params.write_noise * z), lo, hi)
