"""Convolutional blocks of a Hopfield network: their geometry, the unrolled kernel a crossbar stores, and the
exact convolution in NumPy (for the energy and the NumPy twins).

Images are flattened per sample in NCHW order, ``(B, C * H * W)``, like every state layer. A convolution's
kernel ``(C_out, C_in, k, k)`` is held as the ``(C_in k k [+ 1 bias row], C_out)`` matrix ``unroll`` returns
(torch's ``weight.reshape(C_out, -1).T``): output pixel p of a sample is ``patch_p @ W``, with ``patch_p``
the pixel's receptive field (zero where it overhangs the padding).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvGeometry:
    """A 2-D convolution's shapes: ``C`` input channels of ``H x W``, ``k x k`` kernels, stride, zero padding."""

    C: int
    H: int
    W: int
    k: int
    stride: int = 1
    pad: int = 0

    def __post_init__(self):
        if min(self.C, self.H, self.W, self.k, self.stride) < 1 or self.pad < 0:
            raise ValueError(f"convolution: sizes, kernel and stride must be >= 1 and padding >= 0, got {self}")
        if self.OH < 1 or self.OW < 1:
            raise ValueError(f"convolution: a {self.k}x{self.k} kernel with padding {self.pad} does not fit a "
                             f"{self.H}x{self.W} image")

    @property
    def OH(self) -> int:
        return (self.H + 2 * self.pad - self.k) // self.stride + 1

    @property
    def OW(self) -> int:
        return (self.W + 2 * self.pad - self.k) // self.stride + 1

    @property
    def patch(self) -> int:
        """Rows of the unrolled kernel (bias row not counted): ``C k k``."""
        return self.C * self.k * self.k

    @property
    def pixels(self) -> int:
        """Output pixels per channel, ``OH OW``."""
        return self.OH * self.OW

    def args(self) -> tuple[int, ...]:
        """The integers the kernels take: ``C, H, W, k, stride, pad, OH, OW``."""
        return self.C, self.H, self.W, self.k, self.stride, self.pad, self.OH, self.OW


def unroll(weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """The conductance matrix of a ``(C_out, C_in, k, k)`` kernel: ``(C_in k k [+ 1], C_out)`` float32."""
    W = weight.reshape(weight.shape[0], -1).T
    if bias is not None:
        W = np.vstack([W, np.asarray(bias).reshape(1, -1)])
    return np.ascontiguousarray(W, dtype=np.float32)


def patches(x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """(B, C H W) images to their (B OH OW, C k k) patches (pixel-major per sample), by strided windows over
    the zero-padded images."""
    B = x.shape[0]
    img = np.pad(x.reshape(B, g.C, g.H, g.W), ((0, 0), (0, 0), (g.pad, g.pad), (g.pad, g.pad)))
    win = np.lib.stride_tricks.sliding_window_view(img, (g.k, g.k), axis=(2, 3))  # (B, C, H', W', k, k)
    win = win[:, :, ::g.stride, ::g.stride][:, :, : g.OH, : g.OW]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(B * g.pixels, g.patch)


def pixels_to_nchw(pix: np.ndarray, B: int, g: ConvGeometry) -> np.ndarray:
    """(B OH OW, C_out) pixel rows to (B, C_out OH OW) images."""
    return pix.reshape(B, g.pixels, -1).transpose(0, 2, 1).reshape(B, -1)


def nchw_to_pixels(y: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """(B, C_out OH OW) images to (B OH OW, C_out) pixel rows."""
    B = y.shape[0]
    return y.reshape(B, -1, g.pixels).transpose(0, 2, 1).reshape(B * g.pixels, -1)
