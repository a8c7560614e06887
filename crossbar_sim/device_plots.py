"""What ``crossbar-sim device show`` draws: a device's pulse response, its step sizes and its levels."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
from numba import njit

from crossbar_sim import rng as R
from device_models.base import ROW_G_MAX, ROW_G_MIN, ROW_STUCK, DeviceModel


@njit  # not cached: it takes the pulse function (see crossbar_sim.writeback.write_pairs)
def _trace(pulse, g0, n_up, n_down, P, write_noise, key):
    """Conductance of every device after each pulse of an up sweep followed by a down sweep."""
    n_dev = g0.size
    out = np.empty((n_up + n_down + 1, n_dev))
    out[0] = g0
    for k in range(n_dev):
        g = g0[k]
        dev_key = R.bits(key, np.uint64(k))
        for t in range(n_up + n_down):
            g = pulse(g, 1 if t < n_up else -1, P, k, write_noise, dev_key, np.uint64(2 * t) << np.uint64(8))
            out[t + 1, k] = g
    return out


@njit
def _steps(pulse, g, direction, P):
    out = np.empty(g.size)
    for i in range(g.size):
        out[i] = pulse(g[i], direction, P, 0, 0.0, np.uint64(0), np.uint64(0)) - g[i]
    return out


def pulse_response(model: DeviceModel, devices: int = 200, seed: int = 0):
    """Up-then-down sweeps of ``devices`` sampled devices (each from its own g_min), with all their noise."""
    p = model.params
    P = model.sample(np.random.default_rng(seed), devices)
    P[ROW_STUCK] = 0.0  # show the response of working devices
    n = 2 * model.max_pulses()
    trace = _trace(model.pulse, P[ROW_G_MIN].copy(), n, n, P, p.write_noise, np.uint64(seed))
    return trace, P


def show(model: DeviceModel, out: Path, devices: int = 200, seed: int = 0) -> Path:
    """Write ``pulse_response.png`` and ``pulse_response.csv`` (median and 5/95% band per pulse) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    trace, P = pulse_response(model, devices, seed)
    pulses = np.arange(trace.shape[0])
    lo, med, hi = np.percentile(trace, [5, 50, 95], axis=1)
    with open(out / "pulse_response.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pulse", "g_median_uS", "g_p05_uS", "g_p95_uS"])
        w.writerows(zip(pulses, *(np.round(a, 6) for a in (med, lo, hi))))
    nominal = _no_spread(model)
    g_axis = np.linspace(nominal[ROW_G_MIN, 0], nominal[ROW_G_MAX, 0], 200)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110)
    ax = axes[0]
    n_up = trace.shape[0] // 2
    ax.fill_between(pulses, lo, hi, color="tab:blue", alpha=0.25, label="5-95% of devices")
    ax.plot(pulses, med, color="tab:blue", label="median device")
    ax.plot(pulses, trace[:, 0], color="tab:gray", lw=0.8, alpha=0.8, label="one device")
    ax.axvline(n_up, color="k", ls=":", lw=0.8)
    ax.set_xlabel("pulse number (up, then down)")
    ax.set_ylabel("conductance (uS)")
    ax.set_title("pulse response")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(g_axis, _steps(model.pulse, g_axis, 1, nominal), label="up pulse", color="tab:green")
    ax.plot(g_axis, -_steps(model.pulse, g_axis, -1, nominal), label="down pulse (magnitude)", color="tab:red")
    ax.axhline(model.nominal_step(), color="k", ls=":", lw=0.8, label="nominal step")
    ax.set_xlabel("conductance (uS)")
    ax.set_ylabel("step (uS)")
    ax.set_yscale("log")
    ax.set_title("step size against conductance")
    ax.legend(fontsize=8)
    ax = axes[2]
    levels = np.unique(np.round(_trace(model.pulse, nominal[ROW_G_MIN].copy(), n_up, n_up, nominal, 0.0,
                                       np.uint64(0))[:, 0], 9))
    reached = np.concatenate([np.unique(np.round(trace[:, k], 9)) for k in range(trace.shape[1])])
    ax.hist(reached, bins=80, color="tab:purple", alpha=0.7)
    ax.set_xlabel("conductance (uS)")
    ax.set_ylabel("distinct levels reached, all devices")
    ax.set_title(f"reachable levels: {len(levels)} in a noiseless sweep")
    fig.suptitle(f"{model.name}: " + ", ".join(f"{k}={v}" for k, v in model.describe().items()
                                                if k not in ("model", "table")), fontsize=8)
    fig.tight_layout()
    path = out / "pulse_response.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def _no_spread(model: DeviceModel) -> np.ndarray:
    """The parameters of one device without device-to-device spread or faults."""
    return type(model)(dataclasses.replace(model.params, d2d=0.0, stuck_fraction=0.0)).sample(np.random.default_rng(0), 1)
