"""`crossbar-sim devices`, `crossbar-sim device show`, presets in scenarios, and plugin validation."""
import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
from numba import njit

import device_models
from crossbar_sim.cli import main
from crossbar_sim.config import ConfigError, load_scenario
from device_models.base import DeviceModel, DeviceModelError, DeviceParams
from device_models.presets import PRESETS

SHOWABLE = sorted(n for n, c in device_models.registry().items() if not c.ideal) + sorted(PRESETS)


def test_devices_lists_every_model_and_preset_with_units(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    for name in device_models.registry():
        assert f"{name}:" in out
    for name in PRESETS:
        assert f"  {name}: " in out
    assert "g_max           = 25.0         Highest conductance a device reaches, uS." in out


@pytest.mark.parametrize("name", SHOWABLE)
def test_device_show_writes_the_plots(name, tmp_path):
    assert main(["device", "show", name, "--set", "d2d=0.05", "--devices", "20", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "pulse_response.png").stat().st_size > 10_000
    lines = (tmp_path / "pulse_response.csv").read_text().splitlines()
    assert lines[0] == "pulse,g_median_uS,g_p05_uS,g_p95_uS" and len(lines) > 3


def test_device_show_rejects_bad_input(tmp_path, capsys):
    assert main(["device", "show", "unobtainium", "--out", str(tmp_path)]) == 2
    assert "unknown device model 'unobtainium'" in capsys.readouterr().err
    assert main(["device", "show", "soft_bounds", "--set", "bits=99", "--out", str(tmp_path)]) == 2
    assert "device.bits: expected an integer from 1 to 16, got 99" in capsys.readouterr().err


def test_presets_bind_with_overrides_and_are_checked():
    name = sorted(PRESETS)[0]
    preset = PRESETS[name]
    sc = load_scenario(raw={"hardware": {"device": {"preset": name, "write_noise": 0.1}}})
    dev = sc.hardware.device
    assert dev.model == preset.model and dev.params.write_noise == 0.1 and dev.preset == name
    for key, value in preset.values.items():
        if key != "write_noise":
            assert getattr(dev.params, key) == value
    with pytest.raises(ConfigError, match="hardware.device.preset: unknown preset 'nope'"):
        load_scenario(raw={"hardware": {"device": {"preset": "nope"}}})
    other = next(m for m in device_models.registry() if m not in (preset.model, "ideal"))
    with pytest.raises(ConfigError, match=f"preset {name!r} is a {preset.model!r} device"):
        load_scenario(raw={"hardware": {"device": {"preset": name, "model": other}}})


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_valid_and_cited(name):
    preset = PRESETS[name]
    model = device_models.get_model(preset.model)(**preset.values)
    assert not model.params.check() and len(preset.source) > 20


@njit
def _pulse(g, n, P, k, write_noise, key, index):
    return g + n * P[2, k]


@dataclass(frozen=True)
class _Params(DeviceParams):
    shape: float = 1.0
    """A shape, dimensionless."""


@dataclass(frozen=True)
class _Undocumented(DeviceParams):
    shape: float = 1.0


def _model(**attrs):
    return type("Plugin", (DeviceModel,), {"name": "plugin", "params_cls": _Params, "pulse": _pulse, **attrs})


def test_validation_names_the_plugin_and_the_problem():
    device_models.validate(_model(), "'plugin' (pkg:Plugin)")
    cases = [
        (int, "is not a subclass of device_models.base.DeviceModel"),
        (_model(params_cls=_Undocumented), "fields without a docstring (state the unit): shape"),
        (_model(shape_params=("nope",)), "shape_params ['nope'] are not fields of _Params"),
        (_model(pulse=lambda *a: 0.0), "`pulse` must be a numba.njit-compiled function"),
        (_model(levels="many"), "levels must be 'exact', 'sweep' or 'mid_step'"),
    ]
    for cls, problem in cases:
        with pytest.raises(DeviceModelError, match="device model plugin 'plugin' \\(pkg:Plugin\\): " + problem.replace("(", "\\(").replace(")", "\\)").replace("[", "\\[").replace("]", "\\]")):
            device_models.validate(cls, "'plugin' (pkg:Plugin)")
