"""``lookup``: a measured device, from a table of conductance against pulse number.

As NeuroSim's measured devices and CrossSim's lookup tables do, the device is described by two measured
curves: conductance after each potentiation pulse (rising from the lowest state) and after each depression
pulse (falling from the highest). A pulse finds the device's place on the curve of its direction (by inverse
interpolation) and moves it one pulse along. The curves are normalised to the table's own range and mapped
onto each device's [g_min, g_max], so device-to-device spread and all other effects apply as for any model.

The table is a CSV file with a header and the columns ``pulse, g_potentiation, g_depression`` (any units;
only the shape is used), both curves monotone. ``device_models/data/example_rram.csv`` is shipped as an
example (see the header of that file for what it is).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit

from device_models.base import ROW_G_MAX, ROW_G_MIN, DeviceModel, DeviceModelError, DeviceParams, noisy_step

EXAMPLE_TABLE = str(Path(__file__).with_name("data") / "example_rram.csv")


@dataclass(frozen=True)
class LookupParams(DeviceParams):
    table: str = field(default=EXAMPLE_TABLE)
    """Path of the CSV table (pulse, g_potentiation, g_depression)."""


def read_table(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The potentiation and depression curves of a table, normalised to [0, 1] (rising and falling)."""
    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(line for line in fh if not line.startswith("#"))]
    except OSError as exc:
        raise DeviceModelError(f"lookup: cannot read table {path} ({exc.strerror})") from None
    try:
        data = np.array([[float(v) for v in r[:3]] for r in rows[1:] if r], dtype=np.float64)
    except (ValueError, IndexError):
        raise DeviceModelError(f"lookup: {path}: expected numeric columns pulse, g_potentiation, g_depression") from None
    if data.ndim != 2 or data.shape[0] < 3:
        raise DeviceModelError(f"lookup: {path}: expected at least 3 rows of pulse, g_potentiation, g_depression")
    up, down = data[:, 1], data[:, 2]
    if np.any(np.diff(up) < 0) or np.any(np.diff(down) > 0):
        raise DeviceModelError(f"lookup: {path}: g_potentiation must not fall and g_depression must not rise")
    lo, hi = min(up.min(), down.min()), max(up.max(), down.max())
    if hi <= lo:
        raise DeviceModelError(f"lookup: {path}: the table spans no conductance range")
    return (up - lo) / (hi - lo), (down - lo) / (hi - lo)


@njit(cache=True)
def advance(curve, x, rising):
    """Normalised conductance one pulse further along ``curve`` from ``x``."""
    n = curve.size
    # Place x on the curve: the fractional pulse index where the curve passes x.
    pos = 0.0 if rising else n - 1.0
    for i in range(n - 1):
        a, b = curve[i], curve[i + 1]
        if (rising and a <= x <= b) or (not rising and b <= x <= a):
            pos = i + ((x - a) / (b - a) if b != a else 0.0)
            break
        if (rising and x > b) or (not rising and x < b):
            pos = i + 1.0
    nxt = pos + 1.0
    if nxt >= n - 1:
        return curve[n - 1]
    i = int(nxt)
    f = nxt - i
    return curve[i] + f * (curve[i + 1] - curve[i])


def make_pulse(up: np.ndarray, down: np.ndarray):
    """The pulse response for one table (its curves are compiled in as constants)."""

    @njit
    def lookup_pulse(g, n, P, k, write_noise, key, index):
        lo = P[ROW_G_MIN, k]
        hi = P[ROW_G_MAX, k]
        for j in range(abs(n)):
            x = (g - lo) / (hi - lo)
            d = (advance(up, x, True) if n > 0 else advance(down, x, False)) - x
            g = noisy_step(g, d * (hi - lo), j, lo, hi, write_noise, key, index)
        return g

    return lookup_pulse


class Lookup(DeviceModel):
    """A measured pulse response from a table."""

    name = "lookup"
    levels = "exact"
    symmetric = None
    params_cls = LookupParams
    pulse = None  # set per table in __init__

    def __init__(self, params=None, **overrides):
        super().__init__(params, **overrides)
        self.up, self.down = read_table(self.params.table)
        self.pulse = make_pulse(self.up, self.down)

    def nominal_step(self) -> float:
        """The mean step of the table's potentiation curve, uS."""
        return (self.params.g_max - self.params.g_min) / (self.up.size - 1)

    def max_pulses(self) -> int:
        return self.up.size

    def twin(self, g, direction, P, z, u):
        lo, hi = P[ROW_G_MIN], P[ROW_G_MAX]
        x = (g - lo) / (hi - lo)
        idx = np.arange(self.up.size, dtype=np.float64)
        if direction > 0:
            pos = np.interp(x, self.up, idx)
            nxt = np.interp(pos + 1.0, idx, self.up)
        else:
            pos = np.interp(-x, -self.down, idx)
            nxt = np.interp(pos + 1.0, idx, self.down)
        return np.clip(g + (nxt - x) * (hi - lo) * (1.0 + self.params.write_noise * z), lo, hi)
