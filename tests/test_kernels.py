"""Every Numba kernel against its NumPy twin."""
import numpy as np
import pytest

from crossbar_sim import kernels as K
from crossbar_sim import twins
from crossbar_sim.rng import normal, normal32, normal_np, bits, bits_np, uniform, uniform_np
from tests.helpers.periphery import periphery
from tests.helpers.flat import pack, unpack
from numba import njit


@njit
def _draw(key, n):
    out = np.empty((4, n))
    for i in range(n):
        out[0, i] = float(bits(key, np.uint64(i)) >> np.uint64(11))
        out[1, i] = uniform(key, np.uint64(i))
        out[2, i] = normal(key, np.uint64(i))
        out[3, i] = normal32(key, np.uint64(i))
    return out


def test_rng_kernels_match_twins():
    key = np.uint64(0xDEADBEEF12345)
    got = _draw(key, 1000)
    idx = np.arange(1000, dtype=np.uint64)
    np.testing.assert_array_equal(got[0], (bits_np(key, idx) >> np.uint64(11)).astype(np.float64))
    np.testing.assert_array_equal(got[1], uniform_np(key, idx))
    np.testing.assert_allclose(got[2], normal_np(key, idx), rtol=0, atol=1e-15)
    np.testing.assert_allclose(got[3], normal_np(key, idx), rtol=0, atol=2e-6)


def test_dac_matches_twin(rng):
    x = rng.uniform(-0.2, 1.2, 500).astype(np.float32)
    for steps in (0, 3, 255):
        out = np.empty_like(x)
        K.dac(x, out, steps, 0.0, 1.0)
        np.testing.assert_allclose(out, twins.dac(x, steps, 0.0, 1.0), atol=1e-7)
    out = np.empty_like(x)
    K.dac(x, out, 15, 0.0, 1.0)
    assert len(np.unique(out)) <= 16 and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("analog", [False, True], ids=["exact", "analog"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("block", [7, 300], ids=["split-tiles", "one-tile"])
def test_mvm_matches_twin(rng, analog, bias, block):
    B, n_in, n_out = 5, 20, 11
    x = rng.random((B, n_in)).astype(np.float32)
    W = rng.uniform(-0.3, 0.3, (n_in + int(bias), n_out)).astype(np.float32)
    per = periphery(analog=analog, adc_bits=10, read_sigma=0.05, x_max=1.0)
    key = np.uint64(99)
    out = np.empty((B, n_out), np.float32)
    xb = np.empty(B, np.float32)
    yb = np.empty(B * n_out, np.float32)
    ctr = K.mvm(x, W, out, False, block, per, key, np.uint64(10), 0, B, xb, yb)
    ref, ref_ctr = twins.mvm(x, W, block, per, key, 10)
    assert int(ctr) == int(ref_ctr)
    lsb = 2 * 4.0 / (2 ** 10 - 2)
    # Float rounding may flip an ADC decision: allow one LSB on at most a few outputs.
    diff = np.abs(out - ref)
    assert (diff > 1e-4).mean() < 0.03 and diff.max() <= lsb + 1e-4
    acc = out.copy()
    K.mvm(x, W, acc, True, block, per, key, np.uint64(10), 0, B, xb, yb)
    # A block of rows read on its own draws the same noise as inside the whole batch.
    part = np.empty((2, n_out), np.float32)
    K.mvm(np.ascontiguousarray(x[2:4]), W, part, False, block, per, key, np.uint64(10), 2, B, xb, yb)
    np.testing.assert_allclose(part, out[2:4], atol=1e-5)
    np.testing.assert_allclose(acc, 2 * out, atol=1e-5)


def test_mvm_read_noise_has_the_stated_std(rng):
    B, n_in, n_out = 200, 50, 40
    x = rng.random((B, n_in)).astype(np.float32)
    W = np.zeros((n_in, n_out), np.float32)
    per = periphery(analog=True, dac_bits=0, adc_bits=0, read_sigma=0.1)
    out = np.empty((B, n_out), np.float32)
    K.mvm(x, W, out, False, 256, per, np.uint64(5), np.uint64(0), 0, B, np.empty(B, np.float32),
          np.empty(B * n_out, np.float32))
    z = out / (0.1 * np.linalg.norm(x, axis=1, keepdims=True))
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02


CASES = [(dyn, loss) for dyn in ("euler", "fixed_point", "coordinate") for loss in ("mse", "cross_entropy")]


@pytest.mark.parametrize("chunks", [1, 2, 5])
@pytest.mark.parametrize("analog", [False, True], ids=["exact", "analog"])
@pytest.mark.parametrize("dyn,loss", CASES, ids=[f"{d}-{l}" for d, l in CASES])
def test_settle_matches_twin(small_net, dyn, loss, analog, chunks):
    sizes, weights, x, y = small_net
    B = x.shape[0]
    L = len(sizes) - 1 if loss == "mse" else len(sizes) - 2
    if loss == "cross_entropy":
        y = np.eye(sizes[-1], dtype=np.float32)[np.arange(B) % sizes[-1]]
    states = [np.random.default_rng(l).random((B, sizes[l])).astype(np.float32) * 0.5 for l in range(1, L + 1)]
    per = periphery(analog=analog, adc_bits=12, dac_bits=10, read_sigma=0.01, rows=5, cols=4)
    n, soff, S, Wf, WTf, *layout = pack(sizes, weights, states, B, readout=loss == "cross_entropy")
    dyn_id, loss_id = K.DYNAMICS[dyn], K.LOSSES[loss]
    tol = 1e-7 if analog else 1e-3  # exact reads converge, so samples stop at different steps
    cfg = np.array([dyn_id, loss_id, 40, 0.3, 0.5, 1.0, tol])
    xq = twins.dac(x, per[K.PER_DAC_STEPS], 0, 1) if analog else x
    Q = np.empty_like(S) if analog else S
    work = np.zeros(K.work_size(B, list(sizes), chunks), np.float32)
    steps, sample_steps, delta, mean_delta, status = K.settle(xq, y, S, Q, Wf, WTf, n, soff, *layout, cfg, per,
                                                              np.uint64(3), np.uint64(0), work, chunks)
    ref, ref_steps, ref_delta = twins.settle(xq, y, states, weights, dyn_id, loss_id, 40, 0.3, 0.5, 1.0, tol,
                                             per, np.uint64(3))
    assert status == K.STATUS_OK and steps == ref_steps
    got = unpack(S, sizes, L, B)
    for a, b in zip(got, ref):
        diff = np.abs(a - b)
        # Exact reads agree to float rounding; analog reads may flip a converter LSB somewhere.
        assert diff.max() < (1e-4 if not analog else 0.02), diff.max()
        assert np.mean(diff > 1e-4) < (1e-9 if not analog else 0.05)


def test_settle_stops_early_and_flags_nan(small_net):
    sizes, weights, x, y = small_net
    B = x.shape[0]
    states = [np.zeros((B, s), np.float32) for s in sizes[1:]]
    per = periphery(analog=False)
    n, soff, S, Wf, WTf, *layout = pack(sizes, weights, states, B)
    work = np.zeros(K.work_size(B, list(sizes), 2), np.float32)
    cfg = np.array([K.DYN_COORDINATE, K.LOSS_MSE, 500, 0.0, 0.5, 1.0, 1e-6])
    steps, sample_steps, delta, _, status = K.settle(x, y, S, S, Wf, WTf, n, soff, *layout, cfg, per,
                                                     np.uint64(1), np.uint64(0), work, 2)
    assert status == K.STATUS_OK and steps < 500 and delta < 1e-6 and sample_steps <= B * steps
    Wf[3] = np.nan
    S[:] = 0
    *_, status = K.settle(x, y, S, S, Wf, WTf, n, soff, *layout, cfg, per, np.uint64(1), np.uint64(0), work, 2)
    assert status == K.STATUS_NONFINITE


@pytest.mark.parametrize("beta", [-0.5, -1.0, -1.5])
@pytest.mark.parametrize("dyn", ["fixed_point", "coordinate"])
def test_negative_nudge_at_and_beyond_minus_one_matches_twin(small_net, dyn, beta):
    """Centered EP with beta >= 1 nudges at -beta: the output block's energy is then linear or concave and its
    exact minimum over the box is an end; kernel and twin agree, and no division by 1 + beta happens."""
    sizes, weights, x, y = small_net
    B, L = x.shape[0], len(sizes) - 1
    states = [np.full((B, sizes[l]), 0.5, np.float32) for l in range(1, L + 1)]
    per = periphery(analog=False)
    n, soff, S, Wf, WTf, *layout = pack(sizes, weights, states, B)
    cfg = np.array([K.DYNAMICS[dyn], K.LOSS_MSE, 15, beta, 0.5, 1.0, 0.0])
    work = np.zeros(K.work_size(B, list(sizes), 2), np.float32)
    *_, status = K.settle(x, y, S, S, Wf, WTf, n, soff, *layout, cfg, per, np.uint64(3), np.uint64(0), work, 2)
    ref, _, _ = twins.settle(x, y, states, weights, K.DYNAMICS[dyn], K.LOSS_MSE, 15, beta, 0.5, 1.0, 0.0, per,
                             np.uint64(3))
    assert status == K.STATUS_OK
    for a, b in zip(unpack(S, sizes, L, B), ref):
        np.testing.assert_allclose(a, b, atol=1e-4)
    out = unpack(S, sizes, L, B)[-1]
    if beta <= -1.0:
        assert np.isin(out, [0.0, 1.0]).all()  # the minimum of a linear or concave block is an end


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("analog", [False, True], ids=["exact", "analog"])
def test_the_dense_only_settle_loop_gives_the_full_ones_numbers(loss, analog):
    """Networks without convolutions run ``settle_dense`` (compiled without the convolution reads): the same
    states, steps and noise draws as ``settle``, on a skip graph with masks."""
    from crossbar_sim.engine import Engine
    from crossbar_sim.tiles import Periphery
    from device_models.ideal import Ideal
    from device_models.linear_step import LinearStep
    from networks.activations import make_activation
    from networks.small_world import small_world

    readout = "state" if loss == "mse" else "softmax"
    sizes = (12, 9, 8, 7, 4) if loss == "mse" else (12, 9, 8, 7, 5, 3)
    net = small_world(sizes, make_activation("hard_sigmoid"), readout, 0.3, np.random.default_rng(4))
    model = LinearStep(bits=8, read_noise=0.02) if analog else Ideal()
    eng = Engine(net, net.init_weights(np.random.default_rng(0)), model, Periphery(rows=5, cols=4), "round",
                 np.random.default_rng(1))
    assert len(eng.conv_table) == 0
    B = 6
    g = np.random.default_rng(2)
    x = eng.input_dac(g.random((B, sizes[0])).astype(np.float32))
    y = np.eye(sizes[-1], dtype=np.float32)[np.arange(B) % sizes[-1]]
    results = []
    for kernel in (K.settle, K.settle_dense):
        S = np.zeros(B * eng.state_size(), np.float32)
        Q = np.empty_like(S) if eng.analog else S
        work = np.zeros(K.work_size(B, list(eng.n), 2, eng.edge_table, eng.conv_table), np.float32)
        cfg = np.array([K.DYN_COORDINATE, eng.loss, 30, 0.4, 0.5, 1.0, 1e-6, 1.0])
        out = kernel(x, y, S, Q, eng.Wf, eng.WTf, eng.n, eng.state_offsets(B), eng.edge_table, eng.conv_table,
                     eng.adj_ptr, eng.adj, eng.color, cfg, eng.per, np.uint64(9), np.uint64(0), work, 2)
        results.append((out, S))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert np.abs(results[0][1]).max() > 0
