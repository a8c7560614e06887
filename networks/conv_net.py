"""Convolutional Hopfield networks: Laborieux et al. 2021's conv net, and deep VGG-style stacks.

Each entry of ``channels`` is one state layer: a ``kernel x kernel`` convolution (stride 1, ``padding``) of the
layer below, max-pooled over ``pool x pool`` windows (Phi = sum <P(conv(s_{l-1}, W_l) + b_l), s_l>) where the layer
pools (every layer in Laborieux's net; chosen layers, ``pool_layers``, in a VGG-style stack of 3x3 convolutions
with padding 1, the network of Lin et al.'s intermediate error signals). A dense block
joins the last one to the classes: the output layer (MSE) or the softmax readout outside the dynamics
(cross-entropy). The paper's CIFAR-10 net is channels [128, 256, 512, 512] with 3x3 kernels; on 28x28x1 the
usual adaptation is two 5x5 layers of 32 and 64 channels, 28 -> 24 -> 12 -> 8 -> 4. With ``stride=2`` and
``pool=1`` the same layer shapes (28 -> 12 -> 4) come from strided convolutions instead of max-pooling: the
coupling is then bilinear and the energy quadratic in each layer.
"""
from __future__ import annotations

from networks.activations import Activation
from networks.convolution import ConvGeometry
from networks.graph import Edge, Network


def conv_net(image: tuple[int, int, int], channels: list[int], classes: int, activation: Activation,
             readout: str = "state", kernel: int = 5, padding: int = 0, pool: int = 2,
             pool_layers: list[int] | None = None, stride: int = 1) -> Network:
    """The network for ``image = (C, H, W)`` inputs; ``pool_layers`` (1-based) are the layers that pool (None:
    all); every convolution has stride ``stride``. Raises ValueError when a layer does not fit its input (the
    kernel is larger than the image, or the output is not a whole number of pooling windows)."""
    C, H, W = image
    sizes = [C * H * W]
    edges = []
    for i, c in enumerate(channels, start=1):
        q = pool if pool_layers is None or i in pool_layers else 1
        g = ConvGeometry(C, H, W, kernel, stride, padding, q)
        edges.append(Edge(len(sizes) - 1, len(sizes), True, conv=g))
        C, H, W = c, g.OH // q, g.OW // q
        sizes.append(c * H * W)
    sizes.append(classes)
    edges.append(Edge(len(sizes) - 2, len(sizes) - 1, True))
    return Network(tuple(sizes), activation, readout, tuple(edges))
