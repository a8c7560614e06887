"""Pulse counts and device choice of the write-back."""
import numpy as np
import pytest

from crossbar_sim import twins
from crossbar_sim.tiles import CrossbarArray, Periphery
from crossbar_sim.writeback import write_pairs
from device_models.base import ROW_STUCK
from device_models.linear_step import LinearStep


def _array(W0, rounding="round", **params):
    model = LinearStep(g_min=0.0, g_max=10.0, **params)
    R, C = W0.shape
    Wv = np.zeros((R, C), np.float32)
    WTv = np.zeros((C, R - 1), np.float32)
    return CrossbarArray(W0, model, Periphery(w_max=1.0), np.random.default_rng(0), Wv, WTv, rounding)


def test_round_sends_the_rounded_count_and_moves_weights_by_it():
    arr = _array(np.zeros((4, 3)), bits=6)
    step = arr.dw_step
    k = np.array([[0, 1, -1], [2.4, -2.6, 5], [0.49, -0.51, 3], [10, -7, 0]])
    sent = arr.apply(k * step, np.random.default_rng(1))
    n = np.rint(k)
    assert sent == np.abs(n).sum() == arr.pulses.sum()
    np.testing.assert_allclose(arr.weights(), n * step, atol=1e-12)
    np.testing.assert_allclose(arr.W_view, n * step, atol=1e-6)
    np.testing.assert_allclose(arr.WT_view, (n * step)[:-1].T, atol=1e-6)


def test_pulse_counts_match_twin_and_stochastic_rounding_is_unbiased():
    from crossbar_sim.writeback import pulse_count
    from numba import njit

    @njit
    def counts(dW, step, stochastic, cap, key):
        out = np.zeros(dW.shape, np.int64)
        for i in range(dW.shape[0]):
            for j in range(dW.shape[1]):
                out[i, j] = pulse_count(dW[i, j] / step, stochastic, cap, key, i * dW.shape[1] + j)
        return out

    x = np.random.default_rng(2).normal(0, 2, (50, 40))
    for stochastic in (False, True):
        np.testing.assert_array_equal(counts(x, 1.0, stochastic, 5, np.uint64(9)),
                                      twins.pulse_counts(x, 1.0, stochastic, 5, np.uint64(9)))
    frac = np.full((200, 200), 0.3)
    n = counts(frac, 1.0, True, 100, np.uint64(4))
    assert set(np.unique(n)) == {0, 1}
    assert n.mean() == pytest.approx(0.3, abs=4 * np.sqrt(0.21 / n.size))
    assert counts(frac, 1.0, False, 100, np.uint64(4)).sum() == 0  # round-to-nearest loses it


def test_pair_choice_uses_the_device_with_more_headroom():
    arr = _array(np.zeros((2, 1)), bits=4)
    n = arr.G.size // 2
    arr.G[:] = [8.0, 2.0, 8.0, 2.0]  # G+ then G-: pair 0 is (8, 8), pair 1 is (2, 2)
    arr.apply(np.array([[1.0], [1.0]]) * arr.dw_step, np.random.default_rng(0))
    # Pair 0: G+ has 2 uS up-room, G- has 8 uS down-room -> G- goes down. Pair 1: G+ goes up.
    assert arr.G[0] == 8.0 and arr.G[n] < 8.0
    assert arr.G[1] > 2.0 and arr.G[n + 1] == 2.0


def test_stuck_devices_ignore_pulses_but_pulses_are_counted():
    arr = _array(np.zeros((30, 20)), bits=5, stuck_fraction=0.5)
    G0 = arr.G.copy()
    arr.apply(np.full((30, 20), 3 * arr.dw_step), np.random.default_rng(0))
    stuck = arr.P[ROW_STUCK] > 0
    assert np.all(arr.G[stuck] == G0[stuck])
    assert arr.pulses.sum() == 3 * 600
    moved = arr.pulses > 0
    assert np.all(arr.G[moved & ~stuck] != G0[moved & ~stuck])


def test_cap_and_saturation():
    arr = _array(np.zeros((1, 1)), bits=3)
    sent = arr.apply(np.array([[1000.0]]), np.random.default_rng(0))
    assert sent == 2 ** 3  # capped at one sweep of the levels
    assert arr.weights()[0, 0] == pytest.approx(1.0)  # saturated at w_max


def test_write_verify_reaches_its_tolerance_and_reports_its_cost():
    from crossbar_sim.tiles import Programming

    model = LinearStep(g_min=0.0, g_max=10.0, bits=6, write_noise=0.3, d2d=0.1)
    W0 = np.random.default_rng(3).uniform(-0.8, 0.8, (40, 30))
    make = lambda program: CrossbarArray(W0, model, Periphery(w_max=1.0), np.random.default_rng(0),
                                         np.zeros((40, 30), np.float32), np.zeros((30, 39), np.float32), "round", program)
    verified = make(Programming("write_verify", tolerance=1.0, max_iterations=50))
    one_shot = make(Programming("write_verify", tolerance=1.0, max_iterations=1))
    report = verified.programming
    assert report["method"] == "write_verify" and report["pulses"] > W0.size
    err = np.abs(verified.weights() - W0)
    assert np.mean(err <= verified.dw_step * 1.0 + 1e-12) >= 0.99 and report["within_one_step"] >= 0.99
    assert report["residual_rms"] < 0.5 * one_shot.programming["residual_rms"]
    assert verified.pulses.sum() == 0 and verified.pulses_total == 0  # training counts start afresh
    direct = make(Programming("direct"))
    assert direct.programming["method"] == "direct" and "pulses" not in direct.programming


def test_pulse_trains_deliver_the_update_in_expectation():
    """Fully parallel stochastic update: E[dW] = lr/B * sum coef a^T c (no probability clipped, no bound hit)."""
    from crossbar_sim.tiles import IdealArray

    R, C, B = 12, 9, 8
    g = np.random.default_rng(5)
    events = [(0.5, g.random((B, R)), g.random((B, C))), (-0.5, g.random((B, R)), g.random((B, C)))]
    lr = 0.04
    expected = lr / B * sum(coef * a.T @ c for coef, a, c in events)
    deltas = []
    for trial in range(300):
        arr = _array(np.zeros((R, C)), bits=10)
        arr.apply_trains(events, lr, np.random.default_rng(trial))
        deltas.append(arr.weights())
    deltas = np.array(deltas)
    se = deltas.std(0) / np.sqrt(len(deltas)) + 1e-12
    assert np.all(np.abs(deltas.mean(0) - expected) < 5 * se + 0.02 * np.abs(expected))
    assert np.abs(deltas.mean(0) - expected).mean() < 0.1 * np.abs(expected).mean()
    ideal = IdealArray(np.zeros((R, C)), np.zeros((R, C), np.float32), np.zeros((C, R - 1), np.float32))
    ideal.apply_trains(events, lr, np.random.default_rng(0))
    np.testing.assert_allclose(ideal.weights(), expected, rtol=1e-12)
