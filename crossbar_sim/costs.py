"""What a run costs: operation counts and, from per-operation energies, an energy estimate.

The counts are those of :data:`crossbar_sim.engine.OPS` (matrix-vector products, DAC and ADC conversions,
devices sensed) plus the programming pulses of the write-back. The energy model is linear in them:
``E = dac_pj * dac + adc_pj * adc + cell_read_pj * cell_reads + pulse_pj * pulses``.
"""
from __future__ import annotations

import numpy as np

from crossbar_sim.config import EnergyConfig
from crossbar_sim.engine import OPS


def op_counts(ops: np.ndarray) -> dict[str, int]:
    """``OPS`` counts as a name -> int mapping."""
    return {name: int(v) for name, v in zip(OPS, ops)}


def energy_j(cfg: EnergyConfig, ops: np.ndarray, pulses: int) -> dict[str, float]:
    """Energy by kind of operation and in total, in joules."""
    counts = op_counts(ops)
    parts = {
        "dac": cfg.dac_pj * counts["dac"],
        "adc": cfg.adc_pj * counts["adc"],
        "cell_reads": cfg.cell_read_pj * counts["cell_reads"],
        "pulses": cfg.pulse_pj * pulses,
    }
    out = {k: v * 1e-12 for k, v in parts.items()}
    out["total"] = sum(out.values())
    return out
