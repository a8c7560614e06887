"""Convolutions on tiles: the Numba kernels against torch's convolutions and against their NumPy twins."""
import numpy as np
import pytest

from crossbar_sim import conv as CV
from crossbar_sim import kernels as K
from crossbar_sim import twins as T
from crossbar_sim.conv import ConvGeometry, unroll

GEOMETRIES = [ConvGeometry(1, 8, 8, 3, 1, 1), ConvGeometry(3, 9, 7, 3, 2, 1), ConvGeometry(2, 10, 10, 5, 1, 0),
              ConvGeometry(4, 6, 6, 1, 2, 0), ConvGeometry(2, 7, 7, 3, 2, 0)]


def _per(analog, rows=256):
    per = np.zeros(K.N_PER)
    per[K.PER_X_MAX] = 1.0
    per[K.PER_TILE_ROWS] = per[K.PER_TILE_COLS] = rows
    if analog:
        per[K.PER_ANALOG] = 1.0
        per[K.PER_ADC_STEPS] = 255
        per[K.PER_ADC_RANGE] = 4.0
        per[K.PER_READ_SIGMA] = 0.02
    return per


def _forward(x, Wc, g, per, block, key=7, out=None, row0=0, B_total=None):
    B, co = x.shape[0], Wc.shape[1]
    accumulate = out is not None
    out = np.empty((B, co * g.pixels), np.float32) if out is None else out
    rows = B * g.pixels
    scratch = (np.empty((rows, g.patch), np.float32), np.empty((rows, co), np.float32), np.empty(rows, np.float32),
               np.empty(rows * co, np.float32))
    ctr = CV.conv_read(x, Wc, out, accumulate, *g.args(), block, per, np.uint64(key), np.uint64(5), row0,
                       B if B_total is None else B_total, *scratch)
    return out, ctr


def _backward(y, WTc, g, per, block, key=7):
    B = y.shape[0]
    out = np.empty((B, g.C * g.H * g.W), np.float32)
    rows = B * g.pixels
    scratch = (np.empty((rows, WTc.shape[0]), np.float32), np.empty((rows, g.patch), np.float32),
               np.empty(rows, np.float32), np.empty(rows * g.patch, np.float32))
    ctr = CV.conv_transpose_read(y, WTc, out, False, *g.args(), block, per, np.uint64(key), np.uint64(5), 0, B,
                                 *scratch)
    return out, ctr


def _data(g, co, B=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((B, g.C * g.H * g.W)).astype(np.float32)
    w = rng.normal(0, 0.3, (co, g.C, g.k, g.k)).astype(np.float32)
    b = rng.normal(0, 0.1, co).astype(np.float32)
    y = rng.random((B, co * g.pixels)).astype(np.float32)
    return x, w, b, y


@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
def test_conv_and_its_transpose_match_torch(g):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    co = 5
    x, w, b, y = _data(g, co)
    B = x.shape[0]
    got, _ = _forward(x, unroll(w, b), g, _per(False), 256)
    want = F.conv2d(torch.from_numpy(x).reshape(B, g.C, g.H, g.W), torch.from_numpy(w), torch.from_numpy(b),
                    stride=g.stride, padding=g.pad)
    np.testing.assert_allclose(got, want.reshape(B, -1).numpy(), rtol=1e-5, atol=1e-5)
    WT = np.ascontiguousarray(unroll(w).T)
    back, _ = _backward(y, WT, g, _per(False), 256)
    # conv_transpose2d is the adjoint of conv2d; output_padding restores the rows a strided conv2d drops
    extra = (g.H + 2 * g.pad - g.k) % g.stride, (g.W + 2 * g.pad - g.k) % g.stride
    want_t = F.conv_transpose2d(torch.from_numpy(y).reshape(B, co, g.OH, g.OW), torch.from_numpy(w), stride=g.stride,
                                padding=g.pad, output_padding=extra)
    np.testing.assert_allclose(back, want_t.reshape(B, -1).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
def test_the_feedback_is_the_adjoint_of_the_forward_read(g):
    """<conv(x), y> = <x, conv^T(y)>: the Hopfield feedback reads the same conductances as the forward pass."""
    x, w, _, y = _data(g, 4, seed=1)
    Wc = unroll(w)
    fwd, _ = _forward(x, Wc, g, _per(False), 256)
    back, _ = _backward(y, np.ascontiguousarray(Wc.T), g, _per(False), 256)
    lhs, rhs = float((fwd.astype(np.float64) * y).sum()), float((x.astype(np.float64) * back).sum())
    assert abs(lhs - rhs) <= 1e-5 * max(abs(lhs), 1.0)


@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
@pytest.mark.parametrize("bias", [False, True])
def test_kernels_match_their_numpy_twins_through_the_periphery(g, bias):
    """Tiles smaller than the unrolled kernel, read noise and the ADC: same draws, same numbers."""
    co = 6
    x, w, b, y = _data(g, co, seed=2)
    per = _per(True, rows=7)
    Wc = unroll(w, b if bias else None)
    got, ctr = _forward(x, Wc, g, per, 7)
    want, ctr_t = T.conv_read(x, Wc, g, 7, per, np.uint64(7), np.uint64(5))
    assert ctr == ctr_t
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
    WT = np.ascontiguousarray(unroll(w).T)
    back, ctr = _backward(y, WT, g, per, 4)
    want_b, ctr_t = T.conv_transpose_read(y, WT, g, 4, per, np.uint64(7), np.uint64(5))
    assert ctr == ctr_t
    np.testing.assert_allclose(back, want_b, rtol=1e-5, atol=2e-5)
    exact, _ = _forward(x, Wc, g, _per(False), 256)
    assert not np.allclose(got, exact, atol=1e-4)  # the periphery did act


def test_a_batch_read_in_two_parts_draws_the_same_noise_and_accumulates():
    """The settle loop reads its rows in per-thread chunks: the noise of a pixel must not depend on the split."""
    g = GEOMETRIES[1]
    x, w, b, _ = _data(g, 4, B=5, seed=3)
    per = _per(True, rows=7)
    Wc = unroll(w, b)
    whole, _ = _forward(x, Wc, g, per, 7)
    top, _ = _forward(x[:2], Wc, g, per, 7, row0=0, B_total=5)
    bottom, _ = _forward(x[2:], Wc, g, per, 7, row0=2, B_total=5)
    np.testing.assert_array_equal(np.vstack([top, bottom]), whole)
    twice, _ = _forward(x, Wc, g, per, 7, out=whole.copy())
    np.testing.assert_allclose(twice, 2 * whole, rtol=1e-6)


def test_a_kernel_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        ConvGeometry(1, 4, 4, 5)
    with pytest.raises(ValueError, match="must be >= 1"):
        ConvGeometry(1, 4, 4, 3, stride=0)
