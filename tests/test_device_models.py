"""Device levels, bounds and noise statistics against their analytic values."""
import numpy as np
import pytest
from numba import njit

import device_models
from crossbar_sim import rng as R
from device_models.base import ROW_G_MAX, ROW_G_MIN, ROW_STEP_DOWN, ROW_STEP_UP, ROW_STUCK, DeviceModelError
from device_models.linear_step import LinearStep
from device_models.soft_bounds import SoftBounds

@njit
def _walk(pulse, g0, n_pulses, direction, P, write_noise, key):
    """Conductance after each of ``n_pulses`` single pulses, for every device."""
    n_dev = g0.size
    out = np.empty((n_pulses + 1, n_dev))
    out[0] = g0
    for k in range(n_dev):
        g = g0[k]
        for t in range(n_pulses):
            g = pulse(g, direction, P, k, write_noise, R.bits(key, np.uint64(k)), np.uint64(t))
            out[t + 1, k] = g
    return out


@pytest.mark.parametrize("bits", [1, 3, 6])
def test_linear_step_has_2_to_the_bits_levels(bits):
    model = LinearStep(bits=bits, g_min=1.0, g_max=9.0)
    P = model.sample(np.random.default_rng(0), 1)
    n = 2 ** bits
    walk = _walk(model.pulse, np.array([1.0]), n + 3, 1, P, 0.0, np.uint64(0))[:, 0]
    expected = 1.0 + 8.0 * np.minimum(np.arange(n + 4), n - 1) / (n - 1)
    np.testing.assert_allclose(walk, expected, atol=1e-9)
    assert len(np.unique(np.round(walk, 9))) == n
    programmed = model.program(np.linspace(0, 10, 101), np.repeat(P, 101, axis=1))
    assert set(np.round(programmed, 9)) <= set(np.round(expected, 9))


def test_soft_bounds_follows_its_geometric_approach():
    model = SoftBounds(bits=4, g_min=0.0, g_max=10.0)
    P = model.sample(np.random.default_rng(0), 1)
    s = 10.0 / 15
    walk = _walk(model.pulse, np.array([0.0]), 30, 1, P, 0.0, np.uint64(0))[:, 0]
    np.testing.assert_allclose(walk, 10.0 - 10.0 * (1 - 2 * s / 10.0) ** np.arange(31), rtol=1e-12)
    # At mid-range both steps equal the nominal step; with up_down they differ by (1 +- up_down).
    asym = SoftBounds(bits=4, g_min=0.0, g_max=10.0, up_down=0.2)
    Pa = asym.sample(np.random.default_rng(0), 1)
    up = _walk(asym.pulse, np.array([5.0]), 1, 1, Pa, 0.0, np.uint64(0))[1, 0] - 5.0
    down = 5.0 - _walk(asym.pulse, np.array([5.0]), 1, -1, Pa, 0.0, np.uint64(0))[1, 0]
    assert up == pytest.approx(1.2 * s) and down == pytest.approx(0.8 * s)


def test_d2d_spread_and_stuck_fraction():
    model = SoftBounds(bits=6, d2d=0.1, stuck_fraction=0.2, stuck_high=0.25)
    n = 40000
    P = model.sample(np.random.default_rng(1), n)
    free = P[ROW_STUCK] == 0
    step = model.params.nominal_step
    assert np.std(P[ROW_STEP_UP, free] / step) == pytest.approx(0.1, rel=0.05)
    assert np.std(P[ROW_G_MAX, free] / model.params.g_max) == pytest.approx(0.1, rel=0.05)
    stuck = ~free
    assert stuck.mean() == pytest.approx(0.2, abs=4 * np.sqrt(0.2 * 0.8 / n))
    at_max = P[ROW_G_MIN, stuck] == P[ROW_G_MAX, stuck]
    assert at_max.all()  # a stuck device has a single reachable conductance
    high = P[ROW_G_MAX, stuck] > model.params.g_max / 2
    assert high.mean() == pytest.approx(0.25, abs=4 * np.sqrt(0.25 * 0.75 / stuck.sum()))


def test_normal_generator_moments():
    """Mean, variance and excess kurtosis of the kernels' normal draws against their analytic values."""
    z = R.normal_np(77, np.arange(4_000_000, dtype=np.uint64))
    n = z.size
    assert abs(z.mean()) < 4 / np.sqrt(n)
    assert z.var() == pytest.approx(1.0, abs=4 * np.sqrt(2 / n))
    kurt = ((z - z.mean()) ** 4).mean() / z.var() ** 2 - 3
    assert kurt == pytest.approx(R.NORMAL_EXCESS_KURTOSIS, abs=4 * np.sqrt(24 / n))
    assert np.abs(z).max() < 7.0
    u = R.uniform_np(78, np.arange(1_000_000, dtype=np.uint64))
    assert u.min() >= 0 and u.max() < 1 and u.mean() == pytest.approx(0.5, abs=0.002)


@pytest.mark.parametrize("bad,field", [({"bits": 0}, "bits"), ({"g_min": 5.0, "g_max": 1.0}, "g_max"),
                                       ({"write_noise": -0.1}, "write_noise"), ({"stuck_fraction": 1.5}, "stuck_fraction"),
                                       ({"up_down": 1.0}, "up_down")])
def test_invalid_parameters_are_rejected_at_construction(bad, field):
    with pytest.raises(DeviceModelError, match=f"soft_bounds: {field}"):
        SoftBounds(**bad)
