"""The command line end to end: outputs, determinism, and user errors as one line with exit status 2."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crossbar_sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--set", "train.epochs=2", "--set", "data.train_limit=300", "--quiet"]


def _run(tmp_path, *extra, name="out"):
    out = tmp_path / name
    code = main(["run", str(ROOT / "scenarios" / "quickstart.yaml"), "--out", str(out), *QUICK, *extra])
    return code, out


def test_run_writes_the_run_directory(tmp_path, capsys):
    code, out = _run(tmp_path)
    assert code == 0
    assert {"config.yaml", "metrics.json", "history.csv", "accuracy.png"} <= {p.name for p in out.iterdir()}
    m = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "train_accuracy", "history", "wall_seconds", "settle_steps", "mvm_count", "pulse_count"):
        assert key in m
    assert len(m["history"]) == 2 and m["pulse_count"] > 0 and m["mvm_count"] > 0
    assert "test_accuracy" in m["ideal"] and m["ideal"]["pulse_count"] == 0
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["train"]["epochs"] == 2 and resolved["hardware"]["device"]["bits"] == 4
    lines = (out / "history.csv").read_text().splitlines()
    assert lines[0].startswith("run,epoch,train_accuracy,test_accuracy") and len(lines) == 1 + 2 * 2
    printed = capsys.readouterr().out
    assert "crossbar (soft_bounds) test accuracy" in printed and "ideal test accuracy" in printed


def test_a_regression_run_reports_the_squared_error(tmp_path, capsys):
    out = tmp_path / "diabetes"
    code = main(["run", str(ROOT / "benchmarks" / "seeds" / "gammell" / "diabetes_10_10x5_1.yaml"), "--out", str(out),
                 "--set", "train.epochs=2", "--set", "network.p=0.1", "--set", "network.sizes=[10, 10, 10, 1]",
                 "--set", "hardware.device.model=linear_step", "--set", "compare_ideal=true", "--quiet"])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert "test_accuracy" not in m and "test_accuracy" not in m["history"][0]
    # the score is the paper's regression error: mean 0.5 (output - target)^2, with a target in [0, 1]
    assert 0.0 < m["test_loss"] < 0.5 and 0.0 < m["ideal"]["test_loss"] < 0.5
    assert (out / "history.csv").read_text().startswith("run,epoch,train_loss,test_loss")
    assert "test loss" in capsys.readouterr().out and (out / "accuracy.png").is_file()


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    def numbers(out):
        m = json.loads((out / "metrics.json").read_text())
        return [(r["train_accuracy"], r["test_accuracy"], r["pulses"]) for r in m["history"]], m["settle_steps"]

    _, a = _run(tmp_path, name="a")
    _, b = _run(tmp_path, name="b")
    _, c = _run(tmp_path, "--seed", "1", name="c")
    assert numbers(a) == numbers(b)
    assert numbers(a) != numbers(c)


@pytest.mark.parametrize("args,message", [
    (["--set", "hardware.device.bits=four"], "hardware.device.bits: expected an integer from 1 to 16, got 'four'"),
    (["--set", "data.name=mnist", "--set", "data.dir=/nonexistent"], "mnist: files missing in /nonexistent/mnist"),
    (["--set", "network.sizes=[64, 100, 3]"], "network.sizes: digits needs 64 inputs and 10 outputs"),
    (["--set", "train.lr=1.0e300", "--set", "hardware.device.model=ideal"], "epoch 1, batch 1: the update made a weight NaN or inf"),
    (["--checkpoint-minutes", "-1"], "--checkpoint-minutes: expected a number >= 0, got -1.0"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, args, message, monkeypatch):
    monkeypatch.setenv("CROSSBAR_SIM_MNIST_URL", "http://127.0.0.1:9/")  # nothing listens there
    proc = subprocess.run([sys.executable, "-m", "crossbar_sim.cli", "run", str(ROOT / "scenarios" / "quickstart.yaml"),
                           "--out", str(tmp_path / "o"), *QUICK, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in proc.stderr
    assert message in err[0], err[0]
