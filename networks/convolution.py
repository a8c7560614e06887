"""Convolutional blocks of a Hopfield network: their geometry, the unrolled kernel a crossbar stores, and the
exact convolution in NumPy (for the energy and the NumPy twins).

Images are flattened per sample in NCHW order, ``(B, C * H * W)``, like every state layer. A convolution's
kernel ``(C_out, C_in, k, k)`` is held as the ``(C_in k k [+ 1 bias row], C_out)`` matrix ``unroll`` returns
(torch's ``weight.reshape(C_out, -1).T``): output pixel p of a sample is ``patch_p @ W``, with ``patch_p``
the pixel's receptive field (zero where it overhangs the padding).

A block may pool its output (Laborieux et al. 2021): the coupling is ``<P(conv(s_src) + b), s_dst>`` with ``P`` a
``pool x pool`` max-pool of stride ``pool``, so the destination layer holds the pooled image and the feedback
``conv^T(unpool(s_dst))`` routes each destination unit to the pixel that won its window. Window positions are
numbered row-major (``dy pool + dx``). A later position wins only if it beats the best so far by more than
``TIE`` (relative, at least absolute): values that differ by float rounding alone (a tile's partial sums added in
another order, float32 against float64) count as a tie, which goes to the first, so the kernels, their twins
and the EP update pick the same winners.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvGeometry:
    """A 2-D convolution's shapes: ``C`` input channels of ``H x W``, ``k x k`` kernels, stride, zero padding,
    and the max-pool window of its output (1: none)."""

    C: int
    H: int
    W: int
    k: int
    stride: int = 1
    pad: int = 0
    pool: int = 1

    def __post_init__(self):
        if min(self.C, self.H, self.W, self.k, self.stride, self.pool) < 1 or self.pad < 0:
            raise ValueError(f"convolution: sizes, kernel, stride and pool must be >= 1 and padding >= 0, got {self}")
        if self.OH < 1 or self.OW < 1:
            raise ValueError(f"convolution: a {self.k}x{self.k} kernel with padding {self.pad} does not fit a "
                             f"{self.H}x{self.W} image")
        if self.OH % self.pool or self.OW % self.pool:
            raise ValueError(f"convolution: its {self.OH}x{self.OW} output is not a whole number of {self.pool}x"
                             f"{self.pool} pooling windows")

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

    @property
    def pooled(self) -> int:
        """Pixels per channel of the destination layer, ``OH OW / pool^2``."""
        return self.pixels // self.pool ** 2

    def args(self) -> tuple[int, ...]:
        """The integers the kernels take (``N_CONV`` of them): ``C, H, W, k, stride, pad, OH, OW, pool``."""
        return self.C, self.H, self.W, self.k, self.stride, self.pad, self.OH, self.OW, self.pool


N_CONV = 9  # columns of a kernel's geometry row, ConvGeometry.args()
TIE = 1e-5  # pooling: the margin by which a later window position must beat the best so far


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


def fold(cols: np.ndarray, B: int, g: ConvGeometry) -> np.ndarray:
    """(B OH OW, C k k) patch rows back to (B, C H W) images, each patch entry added where :func:`patches` took
    it from (the adjoint of :func:`patches`: the transposed convolution's col2im)."""
    cols = cols.reshape(B, g.OH, g.OW, g.C, g.k, g.k)
    img = np.zeros((B, g.C, g.H + 2 * g.pad + g.stride * g.OH, g.W + 2 * g.pad + g.stride * g.OW))
    for ky in range(g.k):
        for kx in range(g.k):
            img[:, :, ky: ky + g.stride * g.OH: g.stride, kx: kx + g.stride * g.OW: g.stride] += \
                cols[:, :, :, :, ky, kx].transpose(0, 3, 1, 2)
    return img[:, :, g.pad: g.pad + g.H, g.pad: g.pad + g.W].reshape(B, -1)


def pixels_to_nchw(pix: np.ndarray, B: int, g: ConvGeometry) -> np.ndarray:
    """(B OH OW, C_out) pixel rows to (B, C_out OH OW) images."""
    return pix.reshape(B, g.pixels, -1).transpose(0, 2, 1).reshape(B, -1)


def nchw_to_pixels(y: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """(B, C_out OH OW) images to (B OH OW, C_out) pixel rows."""
    B = y.shape[0]
    return y.reshape(B, -1, g.pixels).transpose(0, 2, 1).reshape(B * g.pixels, -1)


def pool_max(pix: np.ndarray, B: int, g: ConvGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Max-pool (B OH OW, C_out) pixel rows: the pooled (B, C_out OH OW / pool^2) images, NCHW, and the winning
    window position of each pooled unit (int64, same shape)."""
    q = g.pool
    img = pixels_to_nchw(pix, B, g).reshape(B, -1, g.OH // q, q, g.OW // q, q)
    win = img.transpose(0, 1, 2, 4, 3, 5).reshape(B, img.shape[1], g.OH // q, g.OW // q, q * q)
    best, arg = win[..., 0].copy(), np.zeros(win.shape[:-1], dtype=np.int64)
    for i in range(1, q * q):
        wins = win[..., i] > best + TIE * np.maximum(1.0, np.abs(best))
        best = np.where(wins, win[..., i], best)
        arg[wins] = i
    return best.reshape(B, -1), arg.reshape(B, -1)


def unpool(y: np.ndarray, arg: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """(B, C_out OH OW / pool^2) pooled images to (B OH OW, C_out) pixel rows: each value at the position
    ``arg`` names in its window, zeros elsewhere (the adjoint of picking the winners)."""
    q, B = g.pool, y.shape[0]
    PH, PW = g.OH // q, g.OW // q
    win = np.zeros((B, y.shape[1] // (PH * PW), PH, PW, q * q), dtype=y.dtype)
    np.put_along_axis(win, arg.reshape(*win.shape[:4], 1), y.reshape(*win.shape[:4], 1), -1)
    img = win.reshape(B, -1, PH, PW, q, q).transpose(0, 1, 2, 4, 3, 5).reshape(B, -1)
    return nchw_to_pixels(img, g)


def destination_pixels(y: np.ndarray, g: ConvGeometry, arg: np.ndarray | None = None) -> np.ndarray:
    """A block's destination layer (B, n_dst) as the convolution's (B OH OW, C_out) pixel rows: unpooled through
    the winners ``arg`` when the block pools."""
    return nchw_to_pixels(y, g) if g.pool == 1 else unpool(y, arg, g)
