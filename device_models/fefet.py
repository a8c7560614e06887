"""``fefet``: a ferroelectric FET with a few discrete levels reached by stochastic domain switching.

A FeFET's channel conductance is set by the polarisation of a multi-domain ferroelectric gate; a pulse
switches further domains, each with some probability, so the conductance moves between a few discrete
levels and a pulse sometimes does nothing (Jerry et al. 2017, "Ferroelectric FET analog synapse for
acceleration of deep neural network training", IEDM; Ni et al. 2018, "In-memory computing primitive for
sensor data fusion in 28 nm HKMG FeFET technology", IEDM). Here a pulse moves the device one level
(2**bits evenly spaced levels, 3 bits by default) with probability ``p_switch``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from crossbar_sim.rng import uniform
from device_models.base import (N_PARAMS, ROW_G_MAX, ROW_G_MIN, ROW_STEP_DOWN, ROW_STEP_UP, DeviceModel,
                                DeviceParams, round_to_levels, noisy_step, out_of_range)

ROW_P_SWITCH = N_PARAMS


@dataclass(frozen=True)
class FeFETParams(DeviceParams):
    bits: int = field(default=3, metadata={"lo": 1, "hi": 16})
    """Bit depth: 2**bits discrete levels (a few for a FeFET)."""
    p_switch: float = 0.8
    """Probability that a pulse moves the device by one level, in (0, 1]."""

    def check(self):
        return super().check() + out_of_range("p_switch", self.p_switch, 0, 1, lo_open=True)


@njit(cache=True)
def fefet_pulse(g, n, P, k, write_noise, key, index):
    """Apply ``n`` pulses, each switching one level with probability p_switch (see :mod:`device_models.base`)."""
    lo = P[ROW_G_MIN, k]
    hi = P[ROW_G_MAX, k]
    p = min(P[ROW_P_SWITCH, k], 1.0)
    step = P[ROW_STEP_UP, k] if n > 0 else -P[ROW_STEP_DOWN, k]
    for j in range(abs(n)):
        if uniform(key, index + np.uint64(2 * j + 1)) < p:
            d = step
            g = noisy_step(g, d, j, lo, hi, write_noise, key, index)
    return g


class FeFET(DeviceModel):
    """A few discrete levels, stochastic switching."""

    name = "fefet"
    levels = "exact"
    params_cls = FeFETParams
    pulse = fefet_pulse
    shape_params = ("p_switch",)

    def twin(self, g, direction, P, z, u):
        step = P[ROW_STEP_UP] if direction > 0 else -P[ROW_STEP_DOWN]
        moved = np.clip(g + step * (1.0 + self.params.write_noise * z), P[ROW_G_MIN], P[ROW_G_MAX])
        return np.where(u < np.minimum(P[ROW_P_SWITCH], 1.0), moved, g)

    def program(self, target, P):
        """Round to the device's own levels (direct setting)."""
        return round_to_levels(target, P)
