"""Layered Hopfield network (Scellier & Bengio 2017): dense layers, each connected to its neighbours.

Layers s_0 (input, clamped), s_1 ... s_L. Weight matrix ``W[m]`` (m = 1..M) joins layer m - 1 to layer m and
is stored as an (n[m-1] + 1, n[m]) array whose last row is the bias row (bias = x_max * that row, see
:mod:`crossbar_sim.tiles`). With the ``mse`` loss the last layer is the output state (L = M); with
``cross_entropy`` the last matrix is a softmax readout outside the dynamics (L = M - 1, Laborieux 2021).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from networks.activations import Activation


@dataclass(frozen=True)
class LayeredNetwork:
    """Topology and activation of a layered network.

    Attributes:
        sizes: units per layer, input first, classes last.
        activation: the state box.
        readout: ``state`` (the last layer is a state, MSE loss) or ``softmax`` (cross-entropy readout).
    """

    sizes: tuple[int, ...]
    activation: Activation
    readout: str = "state"

    @property
    def n_state_layers(self) -> int:
        """L: the number of free state layers."""
        return len(self.sizes) - (1 if self.readout == "state" else 2)

    def init_weights(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Glorot-uniform weights U[-a, a], a = sqrt(6 / (n_in + n_out)), zero biases; bias row last."""
        weights = []
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            a = np.sqrt(6.0 / (n_in + n_out))
            W = np.zeros((n_in + 1, n_out))
            W[:n_in] = rng.uniform(-a, a, size=(n_in, n_out))
            weights.append(W)
        return weights

    def energy(self, x: np.ndarray, states: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
        """Per-sample energy E = 1/2 sum |s_l|^2 - sum s_{l-1}^T W_l s_l - sum b_l . s_l (float64, shape (B,))."""
        x_max = self.activation.bound
        layers = [x] + list(states)
        E = 0.5 * sum((s.astype(np.float64) ** 2).sum(1) for s in states)
        for m in range(1, self.n_state_layers + 1):
            W = weights[m - 1]
            lower, upper = layers[m - 1].astype(np.float64), layers[m].astype(np.float64)
            E = E - ((lower @ W[:-1]) * upper).sum(1) - x_max * (upper @ W[-1])
        return E
