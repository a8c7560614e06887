"""Named parameter sets for concrete devices, each with the public source of its numbers.

A preset is a device model plus parameter values; a scenario uses one as
``hardware.device: {preset: NAME, ...overrides}``. Most numbers are IBM aihwkit's published device fits
(``src/aihwkit/simulator/presets/devices.py``), converted from its normalised weight range [w_min, w_max]:

* ``levels`` = (w_max - w_min) / dw_min, the number of minimal steps across the range;
* ``write_noise`` = ``dw_min_std`` (both are the std of a pulse's step relative to the step);
* ``d2d`` = ``dw_min_dtod`` (one spread here for steps, bounds and shapes; aihwkit's bound spreads are noted);
* for linear-step fits, ``nonlinearity`` = gamma_up + gamma_down: aihwkit's step slopes, made symmetric.

What a source does not give (absolute conductances, on/off ratio) keeps the model's defaults. aihwkit's
``write_noise_std`` (an extra noise on the weight after each update) has no counterpart here and is not used.
"""
from __future__ import annotations

from dataclasses import dataclass, field

AIHWKIT = "IBM aihwkit, src/aihwkit/simulator/presets/devices.py"


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
    "rram_gong2018": Preset(
        "soft_bounds", {"levels": 1000, "write_noise": 3.75, "d2d": 0.3},
        f"HfO2 RRAM, Gong et al., Nat. Commun. 9, 2102 (2018); {AIHWKIT}, ReRamSBPresetDevice (loose soft-bounds "
        "fit): dw_min 0.002 on [-0.75, 1.25], dw_min_std 3.75, dw_min_dtod 0.3, w_max/w_min_dtod 0.24/0.4"),
    "pcm_nandakumar2020": Preset(
        "pcm", {"levels": 200, "write_noise": 0.6, "d2d": 0.2},
        f"GST PCM, Nandakumar et al., Front. Neurosci. 14, 406 (2020); {AIHWKIT}, PCMPresetDevice: dw_min 0.01 on "
        "[0, 2], dw_min_std 0.6, dw_min_dtod 0.2; the SET law's A_up -27.235, gamma 2.5 on z = -w are this model's "
        "defaults set_a 27.235, set_gamma 5 (its state-dependent extra noise and reset spread are not converted)"),
    "ecram_tang2018": Preset(
        "ecram", {"levels": 1000, "write_noise": 0.3, "d2d": 0.1, "nonlinearity": 0.62},
        f"Li-ion ECRAM, Tang et al., IEDM 2018; {AIHWKIT}, EcRamPresetDevice: dw_min 0.002 on [-0.83, 1.17], "
        "dw_min_std 0.3, dw_min_dtod 0.1, gamma_up/down 0.1153/0.5085 (made symmetric)"),
    "capacitor_li2018": Preset(
        "ecram", {"levels": 400, "write_noise": 0.3, "d2d": 0.1, "nonlinearity": 0.1},
        f"capacitor cross-point cell, Li et al., VLSI 2018; {AIHWKIT}, CapacitorPresetDevice: dw_min 0.005 on "
        "[-1, 1], dw_min_std 0.3, dw_min_dtod 0.1, gamma_up/down 0.05 (its leakage is not modelled); the `ecram` "
        "model stands in as the near-linear symmetric device"),
    "fefet_jerry2017": Preset(
        "fefet", {"bits": 5, "g_min": 0.03973, "g_max": 1.788},
        "HZO FeFET analog synapse, Jerry et al., IEDM 2017 (doi 10.1109/IEDM.2017.8268338): 5-bit (32 levels), "
        "symmetric potentiation and depression, 45x conductance range; G_max/G_min 1.788 uS / 0.03973 uS as in "
        "MLP+NeuroSim V3.0 documents/Cell.cpp (class _2T1F); p_switch is this model's default, not from the paper"),
    "gokmen_vlasov2016": Preset(
        "linear_step", {"levels": 1250, "write_noise": 0.3, "d2d": 0.3},
        f"the RPU device specification of Gokmen & Vlasov, Front. Neurosci. 10, 333 (2016); {AIHWKIT}, "
        "GokmenVlasovPresetDevice: dw_min 0.0016 on [-1, 1], dw_min_std 0.3, dw_min_dtod 0.3"),
}
