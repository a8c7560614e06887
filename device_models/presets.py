"""Named parameter sets for concrete devices, each with the public source of its numbers.

A preset is a device model plus parameter values; a scenario uses one as
``hardware.device: {preset: NAME, ...overrides}``. Where a source gives a figure in another parameterisation
(aihwkit's normalised weights, NeuroSim's nonlinearity labels), the conversion is stated next to it.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    model: str
    values: dict = field(default_factory=dict)
    source: str = ""


PRESETS: dict[str, Preset] = {
    "ideal_4bit": Preset("linear_step", {"bits": 4},
                         "ideal multi-level cell: 16 equally spaced levels, no noise (NeuroSim's ideal device)"),
    "ideal_6bit": Preset("linear_step", {"bits": 6},
                         "ideal multi-level cell: 64 equally spaced levels, no noise (NeuroSim's ideal device)"),
    "ideal_8bit": Preset("linear_step", {"bits": 8},
                         "ideal multi-level cell: 256 equally spaced levels, no noise (NeuroSim's ideal device)"),
}
