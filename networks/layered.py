"""Layered Hopfield network (Scellier & Bengio 2017): dense layers, each connected to its neighbours.

Layers s_0 (input, clamped), s_1 ... s_L. Weight matrix ``W[m]`` (m = 1..M) joins layer m - 1 to layer m and
is stored as an (n[m-1] + 1, n[m]) array whose last row is the bias row (bias = x_max * that row, see
:mod:`crossbar_sim.tiles`). With the ``mse`` loss the last layer is the output state (L = M); with
``cross_entropy`` the last matrix is a softmax readout outside the dynamics (L = M - 1, Laborieux 2021).
It is the chain of :mod:`networks.graph`.
"""
from __future__ import annotations

from networks.activations import Activation
from networks.graph import Network, chain


class LayeredNetwork(Network):
    """A :class:`networks.graph.Network` whose blocks are the chain 0 -> 1 -> ... (each with its bias row).

    Args:
        sizes: units per layer, input first, classes last.
        activation: the state box.
        readout: ``state`` (the last layer is a state, MSE loss) or ``softmax`` (cross-entropy readout).
    """

    def __init__(self, sizes, activation: Activation, readout: str = "state"):
        super().__init__(tuple(sizes), activation, readout, chain(sizes))
