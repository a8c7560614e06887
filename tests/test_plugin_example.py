"""The example third-party plugin installs from its own package and runs in a scenario."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugin_device"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    """The plugin installed (without its dependencies, which are this environment) into a directory of its own."""
    target = tmp_path_factory.mktemp("plugin")
    source = tmp_path_factory.mktemp("plugin_src") / "plugin_device"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                           str(source)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return target


def _cli(plugin_path, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "crossbar_sim.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_plugin_is_listed_shown_and_trains(plugin_path, tmp_path):
    listed = _cli(plugin_path, "devices")
    assert listed.returncode == 0 and "tanh_step: Nominal steps in mid-range" in listed.stdout
    assert "sharpness       = 6.0" in listed.stdout
    shown = _cli(plugin_path, "device", "show", "tanh_step", "--devices", "10", "--out", str(tmp_path / "show"))
    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "show" / "pulse_response.png").exists()
    run = _cli(plugin_path, "run", str(ROOT / "scenarios" / "quickstart.yaml"), "--quiet", "--out", str(tmp_path / "run"),
               "--set", "hardware.device={model: tanh_step, bits: 6, sharpness: 4.0}", "--set", "train.epochs=2",
               "--set", "compare_ideal=false")
    assert run.returncode == 0, run.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["device"] == "tanh_step" and metrics["pulse_count"] > 0 and metrics["test_accuracy"] > 0.3
