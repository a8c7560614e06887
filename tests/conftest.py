"""Session-wide small fixtures with fixed seeds."""
import numpy as np
import pytest


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
