"""One contract, every registered device model (and preset): bounds, levels, symmetry, noise, twin."""
import dataclasses

import numpy as np
import pytest
from numba import njit

import device_models
from crossbar_sim import rng as R
from crossbar_sim.tiles import Periphery
from crossbar_sim import kernels as K
from device_models.base import ROW_G_MAX, ROW_G_MIN, ROW_NU

from device_models.presets import PRESETS

# Every registered model, and every preset (its own values under the test's overrides).
MODELS = sorted(name for name, cls in device_models.registry().items() if not cls.ideal) + sorted(PRESETS)


def make(name, **overrides):
    """A model or preset; the test's ``bits`` replaces a preset's ``levels``."""
    values = {}
    if name in PRESETS:
        values = dict(PRESETS[name].values)
        name = PRESETS[name].model
        if "bits" in overrides:
            values["levels"] = 0
    cls = device_models.get_model(name)
    fields = {f.name for f in dataclasses.fields(cls.params_cls)}
    return cls(**{k: v for k, v in {**values, **overrides}.items() if k in fields})


@njit
def _pulse_all(pulse, g, direction, P, write_noise, key):
    out = np.empty_like(g)
    for k in range(g.size):
        out[k] = pulse(g[k], direction, P, k, write_noise, R.bits(key, np.uint64(k)), np.uint64(0))
    return out


@njit
def _sweep(pulse, g0, steps, direction, P):
    """Conductance of device 0 after each of ``steps`` noiseless pulses."""
    out = np.empty(steps + 1)
    out[0] = g0
    g = g0
    for t in range(steps):
        g = pulse(g, direction, P, 0, 0.0, np.uint64(0), np.uint64(0))
        out[t + 1] = g
    return out


def _draws(key, n):
    keys = R.bits_np(key, np.arange(n, dtype=np.uint64))
    z = np.array([R.normal_np(int(k), np.array([0], np.uint64))[0] for k in keys])
    u = np.array([R.uniform_np(int(k), np.array([1], np.uint64))[0] for k in keys])
    return z, u


@pytest.mark.parametrize("name", MODELS)
def test_bounds_are_respected(name):
    model = make(name, bits=4, write_noise=0.5, d2d=0.2)
    P = model.sample(np.random.default_rng(0), 300)
    g = model.program(np.random.default_rng(1).uniform(0, 30, 300), P)
    for t in range(60):
        g = _pulse_all(model.pulse, g, 1 if (t // 15) % 2 == 0 else -1, P, 0.5, np.uint64(t))
        assert np.all(g >= P[ROW_G_MIN] - 1e-12) and np.all(g <= P[ROW_G_MAX] + 1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_levels_match_the_bit_depth(name):
    model = make(name, bits=6, p_switch=1.0, d2d=0.0)
    P = model.sample(np.random.default_rng(0), 1)
    lo, hi = P[ROW_G_MIN, 0], P[ROW_G_MAX, 0]
    nominal = model.nominal_step()
    sweep = _sweep(model.pulse, lo, 4 * model.max_pulses(), 1, P)
    if model.levels == "exact":
        assert len(np.unique(np.round(sweep, 9))) == model.max_pulses()
        assert sweep[model.max_pulses() - 1] == pytest.approx(hi)
    elif model.levels == "sweep":
        pulses = int(np.argmax(sweep >= hi - 1e-9 * hi))
        assert sweep[-1] == pytest.approx(hi) and 0.9 * 63 <= pulses <= 1.1 * 63 + 1
    else:
        mid = _sweep(model.pulse, (lo + hi) / 2, 1, 1, P)
        assert mid[1] - mid[0] == pytest.approx(model.mid_step(), rel=1e-9)
        assert model.mid_step() >= nominal


@pytest.mark.parametrize("name", MODELS)
def test_up_down_symmetry_is_as_declared(name):
    cls = type(make(name))
    if cls.symmetric is None:
        pytest.skip(f"{name}: symmetry is set by its data")
    for up_down in (0.0, 0.25):
        model = make(name, bits=6, up_down=up_down, p_switch=1.0, write_noise=0.0, d2d=0.0)
        P = model.sample(np.random.default_rng(0), 1)
        lo, hi = P[ROW_G_MIN, 0], P[ROW_G_MAX, 0]
        at = (lo + hi) / 2
        up = _sweep(model.pulse, at, 1, 1, P)[1] - at
        down = at - _sweep(model.pulse, at, 1, -1, P)[1]
        if cls.symmetric:
            assert up / down == pytest.approx((1 + up_down) / (1 - up_down), rel=1e-6)
        else:
            assert abs(up / down - 1) > 0.05


@pytest.mark.parametrize("name", MODELS)
def test_write_noise_matches_its_analytic_std(name):
    n, sigma = 20000, 0.2
    quiet = make(name, bits=6, p_switch=1.0, write_noise=0.0)
    noisy = make(name, bits=6, write_noise=sigma, p_switch=1.0)
    P = quiet.sample(np.random.default_rng(0), n)
    g0 = (P[ROW_G_MIN] + P[ROW_G_MAX]) / 2
    mean_step = _pulse_all(quiet.pulse, g0, 1, P, 0.0, np.uint64(1)) - g0
    step = _pulse_all(noisy.pulse, g0, 1, P, sigma, np.uint64(2)) - g0
    rel = step / mean_step - 1.0
    assert abs(rel.mean()) < 4 * sigma / np.sqrt(n)
    assert rel.std() == pytest.approx(sigma, rel=0.05)


@pytest.mark.parametrize("name", MODELS)
def test_read_noise_reaches_the_tile_as_declared(name):
    model = make(name, read_noise=0.03)
    per = Periphery(w_max=0.7).vector(model, 1.0)
    assert model.read_sigma() == pytest.approx(0.03 * (model.params.g_max - model.params.g_min))
    assert per[K.PER_READ_SIGMA] == pytest.approx(np.sqrt(2) * 0.03 * 0.7)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("direction", [1, -1], ids=["up", "down"])
def test_kernel_matches_numpy_twin(name, direction):
    model = make(name, bits=5, write_noise=0.3, d2d=0.1)
    n = 2000
    P = model.sample(np.random.default_rng(0), n)
    g = np.random.default_rng(1).uniform(P[ROW_G_MIN], P[ROW_G_MAX])
    got = _pulse_all(model.pulse, g, direction, P, 0.3, np.uint64(5))
    z, u = _draws(5, n)
    np.testing.assert_allclose(got, model.twin(g, direction, P, z, u), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", MODELS)
def test_drift_follows_its_power_law(name):
    from crossbar_sim.tiles import CrossbarArray

    model = make(name, bits=6, drift_nu=0.1, drift_nu_dtod=0.02, drift_t0=2.0)
    W0 = np.random.default_rng(0).uniform(-0.5, 0.5, (30, 20))
    arr = CrossbarArray(W0, model, Periphery(w_max=1.0), np.random.default_rng(1),
                        np.zeros((30, 20), np.float32), np.zeros((20, 29), np.float32))
    nu = arr.P[ROW_NU]
    assert nu.mean() == pytest.approx(0.1, abs=4 * 0.02 / np.sqrt(nu.size)) and nu.std() == pytest.approx(0.02, rel=0.1)
    n = W0.size
    for now, t in ((1.0, 2.0), (200.0, 200.0)):  # drift counts from t0 on
        arr.advance(now)
        f = (t / 2.0) ** (-nu)
        expected = (arr.G[:n] * f[:n] - arr.G[n:] * f[n:]) / arr.g_scale
        np.testing.assert_allclose(arr.W_view, expected.reshape(30, 20), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(arr.WT_view, expected.reshape(30, 20)[:-1].T, rtol=1e-5, atol=1e-6)
