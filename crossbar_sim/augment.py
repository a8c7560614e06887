"""Training-set augmentation of image batches: random translations and horizontal flips.

The Hopfield-ResNet code trains Fashion-MNIST with random crops of the zero-padded image and flips; random
translations by up to ``shift`` pixels with zero fill are the same thing for a crop of the original size.
Augmentation acts on training batches only, never on the test set, and draws from the run's ``augment``
generator, so the same seed gives the same images (the BP twin draws the same ones). The training accuracy a run
reports is scored on the augmented images its free phases saw.
"""
from __future__ import annotations

import numpy as np


def augment(x: np.ndarray, shape: tuple[int, int, int], shift: int, flip: bool,
            rng: np.random.Generator) -> np.ndarray:
    """A new batch: each flat image of ``x`` (``(B, C*H*W)``) moved by offsets drawn uniformly from
    ``[-shift, shift]`` along each axis (pixels moved in from outside are 0), then, with ``flip``, mirrored left
    to right with probability 1/2. Draws two offsets and one coin per image, always in that order."""
    C, H, W = shape
    if not 0 <= shift < min(H, W):
        raise ValueError(f"shift {shift} outside [0, {min(H, W) - 1}] for {H}x{W} images")
    B = len(x)
    offsets = rng.integers(-shift, shift + 1, size=(B, 2))
    mirror = rng.random(B) < 0.5
    img = np.asarray(x, dtype=np.float32).reshape(B, C, H, W)
    out = np.zeros_like(img)
    for i, (dy, dx) in enumerate(offsets):
        out[i, :, max(dy, 0): H + min(dy, 0), max(dx, 0): W + min(dx, 0)] = \
            img[i, :, max(-dy, 0): H + min(-dy, 0), max(-dx, 0): W + min(-dx, 0)]
    if flip:
        out[mirror] = out[mirror, :, :, ::-1]
    return out.reshape(B, C * H * W)
