"""Small networks' weights for the kernel and gradient tests."""
import numpy as np


def lively_weights(net, seed: int, bias_seed: int) -> list[np.ndarray]:
    """The network's initial weights, 1.5 times larger, with positive random biases: enough drive that the
    relaxation has something to do (Glorot weights alone leave small test networks nearly silent)."""
    weights = net.init_weights(np.random.default_rng(seed))
    g = np.random.default_rng(bias_seed)
    for W, e in zip(weights, net.edges):
        W[: W.shape[0] - e.bias] *= 1.5
        if e.bias:
            W[-1] = g.uniform(0.0, 0.3, W.shape[1])
    return weights
