"""State activations. Every activation here is a box: the state of a unit lives in [0, bound], the energy
has the box-constrained form of ``../shared/REFERENCE.md`` (E = 1/2 |s|^2 - sum s_l^T W_l s_{l-1} - sum b_l s_l),
and rho is the clip onto the box, so the exact block minimiser of a layer is ``clip(pre-activation, 0, bound)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Activation:
    """A clip onto [0, bound]."""

    name: str
    bound: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, 0.0, self.bound)


def make_activation(name: str, alpha: float | None = None) -> Activation:
    """``hard_sigmoid`` (clip to [0, 1]) or ``clipped_relu`` / ``relu6`` (clip to [0, alpha], alpha 6 by default)."""
    if name == "hard_sigmoid":
        return Activation(name, 1.0)
    if name in ("clipped_relu", "relu6"):
        return Activation(name, 6.0 if alpha is None else float(alpha))
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")


ACTIVATIONS = ("hard_sigmoid", "clipped_relu", "relu6")
