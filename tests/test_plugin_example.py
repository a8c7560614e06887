"""The example third-party plugin installs from its own package, into a fresh virtual environment, and runs."""
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
def venv_python(tmp_path_factory):
    """A fresh virtual environment with crossbar-sim (editable, from this checkout) and the example plugin."""
    root = tmp_path_factory.mktemp("plugin_venv")
    source = root / "plugin_device"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=300)
    python = root / "venv" / "bin" / "python"
    proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", str(ROOT), str(source)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return python


def _cli(python, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(python), "-m", "crossbar_sim.cli", *args], capture_output=True, text=True,
                          env=env, timeout=600, cwd=ROOT)


def test_plugin_is_listed_shown_and_trains(venv_python, tmp_path):
    listed = _cli(venv_python, "devices")
    assert listed.returncode == 0 and "tanh_step: Nominal steps in mid-range" in listed.stdout
    assert "sharpness       = 6.0" in listed.stdout
    shown = _cli(venv_python, "device", "show", "tanh_step", "--devices", "10", "--out", str(tmp_path / "show"))
    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "show" / "pulse_response.png").exists()
    run = _cli(venv_python, "run", str(ROOT / "scenarios" / "quickstart.yaml"), "--quiet", "--out", str(tmp_path / "run"),
               "--set", "hardware.device={model: tanh_step, bits: 6, sharpness: 4.0}", "--set", "train.epochs=2",
               "--set", "compare_ideal=false")
    assert run.returncode == 0, run.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["device"] == "tanh_step" and metrics["pulse_count"] > 0 and metrics["test_accuracy"] > 0.3
