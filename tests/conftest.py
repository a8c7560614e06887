"""Session-wide small fixtures with fixed seeds."""
import numpy as np
import pytest

from crossbar_sim import kernels as K


def periphery(analog=True, dac_bits=8, adc_bits=8, adc_range=4.0, read_sigma=0.02, rows=256, cols=256, x_max=1.0):
    """A kernel periphery vector (``kernels.PER_*``)."""
    per = np.zeros(K.N_PER)
    per[K.PER_ANALOG] = 1.0 if analog else 0.0
    per[K.PER_DAC_STEPS] = 2 ** dac_bits - 1 if dac_bits else 0
    per[K.PER_ADC_STEPS] = 2 ** adc_bits - 2 if adc_bits else 0
    per[K.PER_ADC_RANGE] = adc_range
    per[K.PER_READ_SIGMA] = read_sigma
    per[K.PER_TILE_ROWS] = rows
    per[K.PER_TILE_COLS] = cols
    per[K.PER_X_MAX] = x_max
    return per


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def small_net():
    """A 12-9-7-5 network: weights with bias rows, a batch of inputs, targets."""
    g = np.random.default_rng(7)
    sizes = [12, 9, 7, 5]
    weights = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        W = g.uniform(-0.5, 0.5, size=(a + 1, b)).astype(np.float32)
        W[-1] *= 0.2
        weights.append(W)
    x = g.random((6, sizes[0])).astype(np.float32)
    y = np.eye(sizes[-1], dtype=np.float32)[g.integers(0, sizes[-1], 6)]
    return sizes, weights, x, y
