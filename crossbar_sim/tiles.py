"""Weight matrices on crossbar tiles: conductance pairs, periphery, programming and pulse write-back.

A weight matrix with its bias row, shape (n_in + 1, n_out), is held as differential pairs,
``W = (G+ - G-) / g_scale`` with ``g_scale = (g_max - g_min) / w_max``. The bias is one more crossbar row
whose input line is driven at the DAC's full scale ``x_max`` for every read, so a bias is ``x_max`` times a
conductance difference, learns by the same pulses and is read through the same periphery.

Every array writes its read-out into views of the engine's flat buffers (``W`` and its transposed layout
``WT``); the settle kernel reads only those, and they are refreshed from the conductances after each write.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crossbar_sim import kernels as K
from crossbar_sim.rng import new_key
from crossbar_sim import writeback as WB
from device_models.base import ROW_G_MIN, ROW_STUCK, DeviceModel


@dataclass(frozen=True)
class Periphery:
    """Tile size and converters.

    Attributes:
        rows, cols: devices per tile; larger matrices are split and partial sums added after the ADC.
        dac_bits: input DAC resolution in bits (0: exact inputs).
        adc_bits: output ADC resolution in bits (0: exact outputs).
        adc_range: ADC full scale, +-adc_range, in weight units (sum of weight times input over one tile).
        w_max: largest weight a pair holds, reached at G+ = g_max, G- = g_min.
    """

    rows: int = 256
    cols: int = 256
    dac_bits: int = 8
    adc_bits: int = 8
    adc_range: float = 4.0
    w_max: float = 1.0

    def vector(self, model: DeviceModel, x_max: float) -> np.ndarray:
        """The kernel's periphery array (``kernels.PER_*``) for tiles of ``model``; exact for the ideal model."""
        per = np.zeros(K.N_PER)
        per[K.PER_TILE_ROWS] = self.rows
        per[K.PER_TILE_COLS] = self.cols
        per[K.PER_X_MAX] = x_max
        if model.ideal:
            return per
        per[K.PER_ANALOG] = 1.0
        per[K.PER_DAC_STEPS] = 2 ** self.dac_bits - 1 if self.dac_bits > 0 else 0
        per[K.PER_ADC_STEPS] = 2 ** self.adc_bits - 2 if self.adc_bits > 0 else 0
        per[K.PER_ADC_RANGE] = self.adc_range
        # Each weight is two devices with independent read noise; in weight units per unit input.
        per[K.PER_READ_SIGMA] = math.sqrt(2.0) * model.read_sigma() / self.g_scale(model)
        return per

    def g_scale(self, model: DeviceModel) -> float:
        """uS per weight unit."""
        return (model.params.g_max - model.params.g_min) / self.w_max


@dataclass(frozen=True)
class Programming:
    """How initial weights are written: ``direct`` (each device set to its target, rounded to its levels) or
    ``write_verify`` (pulses from the reset state, read back and corrected until every pair is within
    ``tolerance`` nominal steps or ``max_iterations`` rounds have passed)."""

    method: str = "direct"
    tolerance: float = 1.0
    max_iterations: int = 30


class IdealArray:
    """Floating-point weights, updated exactly (the ideal twin's tiles); masked connections stay 0."""

    def __init__(self, W0: np.ndarray, W_view: np.ndarray, WT_view: np.ndarray, mask: np.ndarray | None = None):
        self.mask = mask
        self.W = np.array(W0, dtype=np.float64) * (1 if mask is None else mask)
        self.W_view, self.WT_view = W_view, WT_view
        self.pulses_total = 0
        self.refresh()

    def refresh(self) -> None:
        # An overflow to inf is caught by the settle kernel, which names the epoch and batch.
        with np.errstate(over="ignore", invalid="ignore"):
            self.W_view[:] = self.W
            self.WT_view[:] = self.W[: self.WT_view.shape[1]].T

    def weights(self) -> np.ndarray:
        return self.W.copy()

    def state(self) -> dict:
        """Everything training changes, for a checkpoint."""
        return {"W": self.W.copy(), "pulses_total": self.pulses_total}

    def load_state(self, state: dict) -> None:
        self.W[:] = state["W"]
        self.pulses_total = state["pulses_total"]
        self.refresh()

    def apply(self, dW: np.ndarray, rng: np.random.Generator) -> int:
        self.W += dW
        if self.mask is not None:
            self.W *= self.mask  # an absent connection stays 0
        self.refresh()
        return 0

    def advance(self, now: float) -> None:
        """Float weights do not drift."""

    def apply_trains(self, events, lr: float, rng) -> int:
        """The expectation of the pulse-train update, exactly (see :meth:`CrossbarArray.apply_trains`)."""
        B = events[0][1].shape[0]
        return self.apply(sum(coef * a.T.astype(np.float64) @ c for coef, a, c in events) * lr / B, rng)

    @property
    def max_device_pulses(self) -> int:
        return 0


class CrossbarArray:
    """One weight matrix on devices of ``model``: conductance pairs, their parameters and pulse counts.

    Args:
        W0: (R, C) initial weights, bias row last, programmed by direct setting (clipped to +-w_max).
        model: the device model of every device.
        periphery: tile and converter settings (``w_max`` sets the conductance scale).
        rng: the run's generator, for the device-to-device sample.
        W_view, WT_view: float32 read-out buffers of shape (R, C) and (C, R - 1).
        rounding: ``round`` or ``stochastic`` pulse-count rounding.
        program: how the initial weights are written (:class:`Programming`); direct setting by default.
        bl: slots of the stochastic pulse streams (``apply_trains``).
        mask: (R, C) bool, the connections that exist; a masked pair is no device: both conductances are 0,
            it is marked absent (``ROW_STUCK`` = -1) and never pulsed.
    """

    def __init__(self, W0, model: DeviceModel, periphery: Periphery, rng, W_view, WT_view, rounding="stochastic",
                 program=None, bl: int = 31, mask: np.ndarray | None = None):
        program = program or Programming()
        self.mask = mask
        self.bl = bl
        self.model = model
        self.shape = W0.shape
        self.W_view, self.WT_view = W_view, WT_view
        self.g_scale = periphery.g_scale(model)
        self.dw_step = model.nominal_step() / self.g_scale
        p = model.params
        self.cfg = np.zeros(WB.N_WB)
        self.cfg[WB.WB_DW_STEP] = self.dw_step
        self.cfg[WB.WB_G_SCALE] = self.g_scale
        self.cfg[WB.WB_STOCHASTIC] = rounding == "stochastic"
        self.cfg[WB.WB_CAP] = model.max_pulses()
        self.cfg[WB.WB_WRITE_NOISE] = p.write_noise
        self.cfg[WB.WB_ENDURANCE] = p.endurance
        self.cfg[WB.WB_SET_ONLY] = model.set_only
        self.cfg[WB.WB_REFRESH_AT] = getattr(p, "refresh_at", 1.0)
        self.cfg[WB.WB_DRIFT] = model.drifts
        self.cfg[WB.WB_T0] = p.drift_t0
        n = W0.size
        self.P = np.ascontiguousarray(model.sample(rng, 2 * n))
        absent = None if mask is None else np.concatenate([~mask.ravel(), ~mask.ravel()])
        self.pulses = np.zeros(2 * n, dtype=np.int64)
        self.t_prog = np.zeros(2 * n)  # time of each device's last pulse (programming at t = 0), s
        self.pulses_total = 0
        self.refresh_pulses = 0
        self.programming: dict = {}
        W = np.clip(W0, -periphery.w_max, periphery.w_max) * (1 if mask is None else mask)
        if program.method == "write_verify":
            self.write_verify(W, rng, program.tolerance, program.max_iterations, absent)
        else:
            g_min = self.P[ROW_G_MIN]
            target = np.concatenate([g_min[:n] + np.maximum(W.ravel(), 0) * self.g_scale,
                                     g_min[n:] + np.maximum(-W.ravel(), 0) * self.g_scale])
            self.G = model.program(target, self.P).astype(np.float64)
            self._remove(absent)
            self.refresh()
            self.programming = {"method": "direct", **self._residual(W)}

    def _remove(self, absent) -> None:
        """Masked pairs are no devices: zero conductance, never pulsed."""
        if absent is not None:
            self.G[absent] = 0.0
            self.P[ROW_STUCK, absent] = -1.0

    def _residual(self, W_target: np.ndarray) -> dict:
        err = self.weights() - W_target
        return {"residual_rms": float(np.sqrt(np.mean(err ** 2))),
                "within_one_step": float(np.mean(np.abs(err) <= self.dw_step))}

    def write_verify(self, W_target, rng, tolerance: float, max_iterations: int, absent=None) -> None:
        """Program ``W_target`` from the reset state (every device at g_min) by write-verify.

        Each round reads every pair once, with the devices' read noise, and sends the pairs whose read weight
        is more than ``tolerance`` nominal steps off a correcting burst of pulses (rounded, device response
        and noise included); it stops when every pair reads within tolerance or after ``max_iterations``
        rounds. ``self.programming`` gets the residual error, the share of pairs within one nominal step and
        the pulses spent.
        """
        self.G = self.P[ROW_G_MIN].copy()
        self._remove(absent)
        self.refresh()
        stochastic = self.cfg[WB.WB_STOCHASTIC]
        self.cfg[WB.WB_STOCHASTIC] = 0.0
        sigma = self.model.read_sigma() * np.sqrt(2.0) / self.g_scale
        rounds = 0
        for rounds in range(1, max_iterations + 1):
            read = self.weights() + sigma * rng.standard_normal(self.shape)
            err = W_target - read
            err[np.abs(err) <= tolerance * self.dw_step] = 0.0
            if self.mask is not None:
                err *= self.mask
            if not err.any():
                break
            self.apply(err, rng)
        self.cfg[WB.WB_STOCHASTIC] = stochastic
        self.programming = {"method": "write_verify", "rounds": rounds, "pulses": int(self.pulses.sum()),
                            **self._residual(W_target)}
        self.pulses[:] = 0  # training pulses are counted from here
        self.pulses_total = 0

    _STATE = ("G", "P", "pulses", "t_prog", "cfg", "pulses_total", "refresh_pulses", "programming")

    def state(self) -> dict:
        """Everything training changes (conductances, device parameters a failure can change, pulse counts,
        last-pulse times, the clock), for a checkpoint."""
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k in self._STATE for v in [getattr(self, k)]}

    def load_state(self, state: dict) -> None:
        for k in self._STATE:
            setattr(self, k, np.ascontiguousarray(state[k]) if isinstance(state[k], np.ndarray) else state[k])
        self.refresh()
        self.advance(self.cfg[WB.WB_NOW])

    def weights(self) -> np.ndarray:
        """Effective weights (G+ - G-) / g_scale, shape (R, C), float64."""
        n = self.G.size // 2
        return ((self.G[:n] - self.G[n:]) / self.g_scale).reshape(self.shape)

    def refresh(self) -> None:
        W = self.weights()
        self.W_view[:] = W
        self.WT_view[:] = W[: self.WT_view.shape[1]].T

    def advance(self, now: float) -> None:
        """Set the clock to ``now`` (s since programming); drifting devices change their read-out."""
        self.cfg[WB.WB_NOW] = now
        if self.cfg[WB.WB_DRIFT]:
            WB.drift_readout(self.G, self.P, self.t_prog, self.W_view, self.WT_view, self.g_scale, now,
                             self.cfg[WB.WB_T0])

    def apply(self, dW: np.ndarray, rng: np.random.Generator) -> int:
        """Write ``dW`` as pulses (see :mod:`crossbar_sim.writeback`); returns the pulses sent."""
        sent, refresh = WB.write_pairs(np.ascontiguousarray(dW, dtype=np.float64), self.G, self.P, self.W_view,
                                       self.WT_view, self.pulses, self.t_prog, self.cfg, new_key(rng),
                                       self.model.pulse)
        self.pulses_total += sent
        self.refresh_pulses += refresh
        return sent

    def apply_trains(self, events, lr: float, rng) -> int:
        """Fully parallel stochastic update of ``lr / B * sum_events coef * a^T c``.

        Each event ``(coef, a, c)`` holds per-sample row inputs ``a`` (B, R) and column values ``c`` (B, C),
        both non-negative; every sample of every event is one parallel update with pulse streams of
        ``self.bl`` slots whose probabilities are scaled so that the expected change is exact and the two
        sides' largest probabilities are equal (aihwkit's update management). Probabilities above 1 are
        clipped, which then under-delivers the update.
        """
        B = events[0][1].shape[0]
        probs_a, probs_c, signs = [], [], []
        for coef, a, c in events:
            K = lr * abs(coef) / (B * self.bl * self.dw_step)
            ma = a.max(1, keepdims=True)
            mc = c.max(1, keepdims=True)
            ok = (ma > 0) & (mc > 0)
            cx = np.sqrt(K * np.where(ok, mc, 1) / np.where(ok, ma, 1)) * ok
            cd = np.sqrt(K * np.where(ok, ma, 1) / np.where(ok, mc, 1)) * ok
            probs_a.append(np.clip(a * cx, 0, 1))
            probs_c.append(np.clip(c * cd, 0, 1))
            signs.append(np.full(B, 1 if coef > 0 else -1, np.int64))
        pa, pc = np.concatenate(probs_a), np.concatenate(probs_c)
        key = new_key(rng)
        rows = WB.pulse_streams(pa, self.bl, key, 0)
        cols = WB.pulse_streams(pc, self.bl, key, pa.shape[0])
        sent, refresh = WB.train_pairs(rows, cols, np.concatenate(signs), self.G, self.P, self.W_view, self.WT_view,
                                       self.pulses, self.t_prog, self.cfg, new_key(rng), self.model.pulse)
        self.pulses_total += sent
        self.refresh_pulses += refresh
        return sent

    @property
    def max_device_pulses(self) -> int:
        return int(self.pulses.max()) if self.pulses.size else 0
