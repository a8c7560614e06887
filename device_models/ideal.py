"""``ideal``: weights are exact floating-point numbers; no levels, bounds, noise or periphery.

The ideal twin of every run uses it. Tiles built on it skip conductances altogether, so its parameters are
only those of the base class, and they are ignored.
"""
from __future__ import annotations

from device_models.base import DeviceModel


class Ideal(DeviceModel):
    """Floating-point weights (the software reference)."""

    name = "ideal"
    ideal = True
    pulse = None
