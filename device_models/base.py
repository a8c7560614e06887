"""The abstract device model that every memristive device plugs into.

A model is three things:

* a parameter dataclass (:class:`DeviceParams` or a subclass), every field documented with its unit;
* :meth:`DeviceModel.sample`, which draws each device's own parameters once (device-to-device spread and
  stuck faults) into a ``(N_PARAMS, n_devices)`` float64 array whose rows are named by ``ROW_*``;
* a Numba-compiled scalar pulse response, :attr:`DeviceModel.pulse`, with the signature
  ``pulse(g, n, P, k, write_noise, key, index) -> g_new``: apply ``n`` pulses (``n > 0`` potentiate,
  ``n < 0`` depress) to device ``k`` whose conductance is ``g``, its parameters in column ``k`` of ``P``.
  Pulse ``j`` draws its normal deviate at ``index + 2 j`` and its uniform one at ``index + 2 j + 1`` of the
  counter-based stream ``key`` (:mod:`crossbar_sim.rng`);
* a NumPy twin of one pulse, :meth:`DeviceModel.twin`, written independently, for the tests.

Shape parameters that a model adds (``shape_params``) get their own per-device rows after the common ones,
each spread device to device by ``d2d``.

The tile code depends only on this module. Invariants are checked when a model is constructed, so a bad
parameter set fails before any simulation starts.
"""
from __future__ import annotations

import dataclasses
from abc import ABC
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numba import njit

from crossbar_sim.rng import normal

ROW_G_MIN, ROW_G_MAX, ROW_STEP_UP, ROW_STEP_DOWN, ROW_STUCK, ROW_NU = range(6)
N_PARAMS = 6


@njit(cache=True, inline="always")
def noisy_step(g, d, j, lo, hi, write_noise, key, index):
    """Pulse ``j`` of a burst: add the step ``d``, scaled by ``1 + write_noise * z`` with ``z`` the pulse's normal
    deviate (drawn at ``index + 2 j``), and clip to [lo, hi]. The common tail of every pulse response."""
    if write_noise != 0.0:
        d *= 1.0 + write_noise * normal(key, index + np.uint64(2 * j))
    return min(max(g + d, lo), hi)


def out_of_range(name: str, value, lo, hi, lo_open: bool = False, hi_open: bool = False) -> list[tuple[str, str]]:
    """``[(name, message)]`` when ``value`` lies outside its interval, else ``[]`` (for ``check`` methods)."""
    above = value > lo if lo_open else value >= lo
    below = value < hi if hi_open else value <= hi
    if above and below:
        return []
    interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    return [(name, f"expected a number in {interval}, got {value!r}")]


def round_to_levels(target: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Direct setting onto each device's own level grid ``g_min + k * step_up``; stuck devices keep theirs."""
    lo, hi, step = P[ROW_G_MIN], P[ROW_G_MAX], P[ROW_STEP_UP]
    g = np.minimum(lo + np.rint((np.clip(target, lo, hi) - lo) / step) * step, hi)
    return np.where(P[ROW_STUCK] > 0, lo, g)


class DeviceModelError(ValueError):
    """A device model or its parameters are invalid; the message names the model and the problem."""


@dataclass(frozen=True)
class DeviceParams:
    """Parameters shared by every non-ideal device model.

    A field's ``metadata`` may give ``lo``/``hi`` bounds that the scenario loader reports in its messages;
    :meth:`check` is the authority on validity.

    Conductances are in microsiemens. Only ratios reach the network (weights are conductance differences
    divided by the tile's scale), so the absolute values matter only for energy estimates.
    """

    g_min: float = 0.1
    """Lowest conductance a device reaches, uS."""
    g_max: float = 25.0
    """Highest conductance a device reaches, uS."""
    bits: int = field(default=8, metadata={"lo": 1, "hi": 16})
    """Bit depth: 2**bits programmable levels; the nominal pulse step is (g_max - g_min) / (2**bits - 1)."""
    levels: int = 0
    """Number of programmable levels when it is no power of two (measured devices); overrides bits when > 1."""
    up_down: float = 0.0
    """Up/down asymmetry, dimensionless in (-1, 1): up steps are (1 + up_down), down steps (1 - up_down) times nominal."""
    write_noise: float = 0.0
    """Cycle-to-cycle noise: std of each pulse's step, relative to that step (dimensionless)."""
    d2d: float = 0.0
    """Device-to-device spread: relative std of each device's bounds, steps and shape parameters, sampled once (dimensionless)."""
    read_noise: float = 0.0
    """Read noise: std of a device's conductance at each read, relative to g_max - g_min, white (dimensionless)."""
    stuck_fraction: float = 0.0
    """Fraction of devices stuck (they ignore pulses), in [0, 1]."""
    stuck_high: float = 0.5
    """Of the stuck devices, the fraction stuck at g_max; the rest are stuck at g_min."""
    endurance: int = 0
    """Pulses after which a device wears out and sticks where it is; 0 means unlimited."""
    drift_nu: float = 0.0
    """Mean drift exponent: a device read t seconds after its last pulse shows G0 (t / drift_t0)^(-nu), dimensionless."""
    drift_nu_dtod: float = 0.0
    """Device-to-device std of the drift exponent nu, dimensionless."""
    drift_t0: float = 1.0
    """Time after a pulse from which drift is counted, s."""

    def check(self) -> list[tuple[str, str]]:
        """Return the problems with these values as (field, message) pairs; empty when valid."""
        problems = []
        if not (0.0 <= self.g_min < self.g_max):
            problems.append(("g_max", f"expected 0 <= g_min < g_max, got g_min={self.g_min}, g_max={self.g_max}"))
        if not (isinstance(self.bits, int) and 1 <= self.bits <= 16):
            problems.append(("bits", f"expected an integer from 1 to 16, got {self.bits!r}"))
        if not (self.levels == 0 or 2 <= self.levels <= 2 ** 20):
            problems.append(("levels", f"expected 0 (use bits) or an integer from 2 to 2**20, got {self.levels!r}"))
        if not (-1.0 < self.up_down < 1.0):
            problems.append(("up_down", f"expected a number in (-1, 1), got {self.up_down}"))
        for name in ("write_noise", "d2d", "read_noise"):
            if getattr(self, name) < 0:
                problems.append((name, f"expected a number >= 0, got {getattr(self, name)}"))
        for name in ("stuck_fraction", "stuck_high"):
            if not (0.0 <= getattr(self, name) <= 1.0):
                problems.append((name, f"expected a number in [0, 1], got {getattr(self, name)}"))
        if self.endurance < 0:
            problems.append(("endurance", f"expected an integer >= 0, got {self.endurance}"))
        for name in ("drift_nu", "drift_nu_dtod"):
            if getattr(self, name) < 0:
                problems.append((name, f"expected a number >= 0, got {getattr(self, name)}"))
        if self.drift_t0 <= 0:
            problems.append(("drift_t0", f"expected a number > 0, got {self.drift_t0}"))
        return problems

    @property
    def n_levels(self) -> int:
        """Programmable levels: ``levels`` if set, else 2**bits."""
        return self.levels if self.levels > 1 else 2 ** self.bits

    @property
    def nominal_step(self) -> float:
        """Nominal conductance step of one pulse, uS."""
        return (self.g_max - self.g_min) / (self.n_levels - 1)


class DeviceModel(ABC):
    """Base of all device models. Subclasses set ``name``, ``params_cls`` and ``pulse``.

    Subclasses are either abstract or final: they fill the hooks, they do not override the driver methods.
    """

    name: ClassVar[str]
    params_cls: ClassVar[type] = DeviceParams
    pulse: ClassVar[object]  # a numba.njit dispatcher, see the module docstring
    ideal: ClassVar[bool] = False
    shape_params: ClassVar[tuple[str, ...]] = ()
    """Fields of ``params_cls`` that get a per-device row (spread by ``d2d``), in row order after ROW_STUCK."""
    levels: ClassVar[str] = "mid_step"
    """How the bit depth shows (checked by the contract test): ``exact``: an up sweep from g_min visits exactly
    :meth:`max_pulses` distinct levels; ``sweep``: a sweep from g_min to g_max takes about 2**bits - 1 pulses;
    ``mid_step``: the step at mid-range is :meth:`mid_step`, the nominal step unless the model says otherwise."""
    symmetric: ClassVar[bool | None] = True
    """Whether up and down steps mirror each other about mid-range when ``up_down`` is 0 (None: set by data)."""
    set_only: ClassVar[bool] = False
    """True for devices that can only be stepped up gradually and reset abruptly (PCM): a pair is then
    updated by up pulses on G+ or G- and refreshed when a device nears g_max."""

    def __init__(self, params=None, **overrides):
        params = params if params is not None else self.params_cls()
        if overrides:
            params = dataclasses.replace(params, **overrides)
        if not isinstance(params, self.params_cls):
            raise DeviceModelError(f"{self.name}: expected {self.params_cls.__name__}, got {type(params).__name__}")
        problems = params.check()
        if problems:
            raise DeviceModelError(f"{self.name}: " + "; ".join(f"{f}: {m}" for f, m in problems))
        self.params = params

    # ---- hooks -------------------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw the per-device parameters of ``n`` devices.

        Each device's bounds and step sizes get an independent relative spread of std ``d2d`` (a normal
        truncated so that steps stay positive and g_max stays above g_min), and a fraction ``stuck_fraction``
        is marked stuck (row ``ROW_STUCK``: 0 free, 1 stuck).

        Returns:
            float64 array of shape (N_PARAMS, n).
        """
        p = self.params
        P = np.empty((N_PARAMS + len(self.shape_params), n))
        spread = p.d2d * rng.standard_normal((4, n)) if p.d2d > 0 else np.zeros((4, n))
        step = self.nominal_step()
        P[ROW_G_MIN] = p.g_min * np.maximum(1.0 + spread[0], 0.0)
        P[ROW_G_MAX] = np.maximum(p.g_max * (1.0 + spread[1]), P[ROW_G_MIN] + step)
        P[ROW_STEP_UP] = step * (1.0 + p.up_down) * np.maximum(1.0 + spread[2], 0.05)
        P[ROW_STEP_DOWN] = step * (1.0 - p.up_down) * np.maximum(1.0 + spread[3], 0.05)
        P[ROW_STUCK] = 0.0
        P[ROW_NU] = p.drift_nu
        if p.drift_nu_dtod > 0:
            P[ROW_NU] = np.maximum(p.drift_nu + p.drift_nu_dtod * rng.standard_normal(n), 0.0)
        for i, name in enumerate(self.shape_params):
            value = getattr(p, name)
            P[N_PARAMS + i] = value * (1.0 + p.d2d * rng.standard_normal(n)) if p.d2d > 0 else value
        if p.stuck_fraction > 0:
            stuck = rng.random(n) < p.stuck_fraction
            high = rng.random(n) < p.stuck_high
            P[ROW_STUCK, stuck] = 1.0
            P[ROW_G_MIN, stuck & high] = P[ROW_G_MAX, stuck & high]
            P[ROW_G_MAX, stuck & ~high] = P[ROW_G_MIN, stuck & ~high]
        return P

    def program(self, target: np.ndarray, P: np.ndarray) -> np.ndarray:
        """Direct setting: the conductance each device takes when told to go to ``target`` (uS).

        The default clips to the device's own bounds; models with discrete levels round to them. Stuck devices
        keep their stuck value.
        """
        g = np.clip(target, P[ROW_G_MIN], P[ROW_G_MAX])
        return np.where(P[ROW_STUCK] > 0, P[ROW_G_MIN], g)

    def nominal_step(self) -> float:
        """Conductance change of one pulse as the controller counts it, uS."""
        return self.params.nominal_step

    def mid_step(self) -> float:
        """The up step at mid-range, uS (checked by the contract test for ``levels = "mid_step"`` models)."""
        return self.nominal_step() * (1.0 + self.params.up_down)

    def max_pulses(self) -> int:
        """Most pulses one pair gets in one write: one sweep of the range (the number of levels)."""
        return self.params.n_levels

    def twin(self, g: np.ndarray, direction: int, P: np.ndarray, z: np.ndarray, u: np.ndarray) -> np.ndarray:
        """NumPy twin of one pulse (``direction`` +1 or -1) on every device, given each device's normal
        deviate ``z`` and uniform deviate ``u`` for that pulse. Models override it; tests compare it with
        :attr:`pulse`."""
        raise NotImplementedError(f"{self.name} has no NumPy twin")

    def read_sigma(self) -> float:
        """Std of one device's conductance at a read, uS."""
        return self.params.read_noise * (self.params.g_max - self.params.g_min)

    @property
    def drifts(self) -> bool:
        return self.params.drift_nu > 0 or self.params.drift_nu_dtod > 0

    def describe(self) -> dict:
        return {"model": self.name, **dataclasses.asdict(self.params)}
