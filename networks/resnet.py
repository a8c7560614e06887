"""The Hopfield-ResNet (Elayedam & Srinivasan): residual blocks of convolutional Hopfield layers.

Each block joins its input p to two layers: p -> a (3x3, stride 1, padding 1), a -> b (3x3, stride 2, padding 1)
and a learned 1x1 stride-2 skip p -> b (without it, the same depth for the seed's claim that deep networks do
not train). A dense block joins the last b to the outputs: four blocks and the head are the paper's 13 weight
tensors. No pooling. The skip joins layers two apart (the same parity), so the exact block updates need three
colours (:meth:`networks.graph.Network.colors`).
"""
from __future__ import annotations

from networks.activations import Activation
from networks.convolution import ConvGeometry
from networks.graph import Edge, Network


def hopfield_resnet(image: tuple[int, int, int], channels: list[int], classes: int, activation: Activation,
                    readout: str = "state", skips: bool = True) -> Network:
    """The network for ``image = (C, H, W)`` inputs, one residual block per entry of ``channels``.

    With ``readout="state"`` the head's outputs are the last state layer (MSE); with ``softmax`` they are the
    cross-entropy readout outside the dynamics.
    """
    C, H, W = image
    sizes = [C * H * W]
    edges = []
    p = 0
    for c in channels:
        a = len(sizes)
        sizes.append(c * H * W)
        edges.append(Edge(p, a, True, conv=ConvGeometry(C, H, W, 3, 1, 1)))
        down = ConvGeometry(c, H, W, 3, 2, 1)
        b = len(sizes)
        sizes.append(c * down.OH * down.OW)
        edges.append(Edge(a, b, True, conv=down))
        if skips:
            edges.append(Edge(p, b, False, conv=ConvGeometry(C, H, W, 1, 2, 0)))
        C, H, W, p = c, down.OH, down.OW, b
    sizes.append(classes)
    edges.append(Edge(p, len(sizes) - 1, True))
    return Network(tuple(sizes), activation, readout, tuple(edges))
