"""Checkpoints and --resume: a run killed anywhere continues to the numbers of an uninterrupted run."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from crossbar_sim.cli import main
from crossbar_sim.config import ConfigError, load_scenario
from crossbar_sim.run import dataset_for, load_run
from crossbar_sim.trainer import Trainer
from device_models import get_model

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


def comparable(metrics: dict) -> dict:
    """metrics.json without the wall-clock fields."""
    m = {k: v for k, v in metrics.items() if k != "wall_seconds"}
    m["history"] = [{k: v for k, v in row.items() if k != "seconds"} for row in m["history"]]
    if "ideal" in m:
        m["ideal"] = comparable(m["ideal"])
    return m


def _cli(*args):
    return subprocess.Popen([sys.executable, "-m", "crossbar_sim.cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("minutes, inside", [(10, False), (0, True)], ids=["epoch_checkpoint", "batch_checkpoint"])
def test_a_run_killed_mid_epoch_resumes_to_the_same_metrics(tmp_path, minutes, inside):
    """Killed in the third epoch: after the second epoch's checkpoint, or (checkpoints after every batch) after
    one saved inside the third epoch."""
    args = ["--set", "train.epochs=4", "--set", "data.train_limit=1400", "--quiet"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert _cli("run", QUICKSTART, "--out", whole, *args).wait(timeout=300) == 0
    proc = _cli("run", QUICKSTART, "--out", cut, *args, "--checkpoint-minutes", minutes)
    ckpt = cut / "checkpoint.pkl"
    while proc.poll() is None:
        try:
            state = pickle.loads(ckpt.read_bytes())
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            time.sleep(0.005)
            continue
        if (state["current"] == "crossbar" and len(state["trainer"]["counters"]["history"]) == 2
                and (state["trainer"]["partial"] is not None) == inside):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (cut / "metrics.json").exists()
    rows = (cut / "history.csv").read_text().splitlines()  # the epochs so far, readable while a run goes on
    assert [r.split(",")[:2] for r in rows[1:]] == [["crossbar", "1"], ["crossbar", "2"]]
    done = subprocess.run([sys.executable, "-m", "crossbar_sim.cli", "run", "--resume", str(cut), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resumed after epoch 2" in done.stdout
    assert (" batches of the next" in done.stdout) == inside
    a = json.loads((whole / "metrics.json").read_text())
    b = json.loads((cut / "metrics.json").read_text())
    assert comparable(a) == comparable(b)


@pytest.mark.parametrize("device", [
    {"model": "soft_bounds", "bits": 4, "write_noise": 0.02, "d2d": 0.1, "read_noise": 0.01, "stuck_fraction": 0.05},
    {"preset": "pcm_nandakumar2020", "set_a": 0.0, "endurance": 30},  # drift, refresh, wear-out
])
def test_trainer_state_round_trip_continues_identically(device):
    raw = {"data": {"name": "digits", "train_limit": 256, "batch_size": 32}, "train": {"epochs": 3},
           "ep": {"free_steps": 8, "nudge_steps": 4, "persistent": True},
           "hardware": {"device": device, "update": {"mode": "pulse_trains"}}}
    sc = load_scenario(raw=raw)
    data = dataset_for(sc)
    whole = Trainer(sc, data, sc.hardware.device.build(), progress=False)
    whole.fit()
    first = Trainer(sc, data, sc.hardware.device.build(), progress=False)
    first.scenario.train.epochs = 1
    first.fit()
    first.scenario.train.epochs = 3
    state = pickle.loads(pickle.dumps(first.state()))
    second = Trainer(sc, data, sc.hardware.device.build(), progress=False)
    second.load_state(state)
    second.fit()
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(second.counters.history) == strip(whole.counters.history)
    for a, b in zip(second.engine.arrays, whole.engine.arrays):
        np.testing.assert_array_equal(a.G, b.G)
        np.testing.assert_array_equal(a.P, b.P)
    assert second.engine.pulses == whole.engine.pulses > 0


def test_a_state_saved_inside_an_epoch_continues_identically():
    """A trainer's state taken after a batch in the middle of an epoch (sample order, next batch, the epoch's
    score and diagnostics sums, momentum, particles, every generator) continues to the same history and
    conductances as the run that was never stopped."""
    raw = {"data": {"name": "digits", "train_limit": 256, "batch_size": 32}, "train": {"epochs": 2, "momentum": 0.9},
           "ep": {"free_steps": 8, "nudge_steps": 4, "persistent": True},
           "hardware": {"device": {"model": "soft_bounds", "bits": 4, "write_noise": 0.02, "d2d": 0.1,
                                   "read_noise": 0.01}}}
    sc = load_scenario(raw=raw)
    data = dataset_for(sc)
    whole = Trainer(sc, data, sc.hardware.device.build(), progress=False)
    saved = []
    whole.fit(on_batch=lambda: saved.append(pickle.dumps(whole.state())) if whole.batches_done() == 3 else None)
    assert len(saved) == 2  # batch 3 of each epoch; continue from the second epoch's
    second = Trainer(sc, data, sc.hardware.device.build(), progress=False)
    second.load_state(pickle.loads(saved[1]))
    assert second.batches_done() == 3 and len(second.counters.history) == 1
    assert second.trained_to() == "after epoch 1 and 3 batches of the next"  # how tools label these weights
    second.fit()
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(second.counters.history) == strip(whole.counters.history)
    assert second.diag.epochs == whole.diag.epochs
    for a, b in zip(second.engine.arrays, whole.engine.arrays):
        np.testing.assert_array_equal(a.G, b.G)
    assert second.batches_done() is None and second.trained_to() == "after epoch 2"


def test_resuming_a_finished_run_changes_nothing(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", str(QUICKSTART), "--out", str(out), "--quiet", "--set", "train.epochs=1",
                 "--set", "data.train_limit=200"]) == 0
    before = (out / "metrics.json").stat().st_mtime_ns
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert "the run had finished" in capsys.readouterr().out
    assert (out / "metrics.json").stat().st_mtime_ns == before


def _drop_key(tree: dict, path: str) -> None:
    *parents, last = path.split(".")
    for k in parents:
        tree = tree[k]
    del tree[last]


def test_a_run_saved_before_a_schema_key_was_added_resumes(tmp_path):
    """Keys added to the schema later (defaults keeping old behaviour) do not make an old run another scenario."""
    out = tmp_path / "r"
    assert main(["run", str(QUICKSTART), "--out", str(out), "--quiet", "--set", "train.epochs=2",
                 "--set", "data.train_limit=100"]) == 0
    (out / "metrics.json").unlink()
    state = pickle.loads((out / "checkpoint.pkl").read_bytes())
    config = yaml.safe_load((out / "config.yaml").read_text())
    for tree in (state["scenario"], config):
        _drop_key(tree, "train.momentum")
    (out / "checkpoint.pkl").write_bytes(pickle.dumps(state))
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert (out / "metrics.json").is_file()


@pytest.mark.parametrize("setup,args,message", [
    (None, [], "not a run directory (no config.yaml)"),
    ("other", [], "written for another scenario"),
    ("garbage", [], "not a readable checkpoint"),
    (None, ["--set", "train.epochs=3"], "give no SCENARIO, --out, --set or --seed"),
])
def test_bad_resumes_exit_2_with_one_line(tmp_path, setup, args, message):
    out = tmp_path / "r"
    out.mkdir()
    if setup:
        assert main(["run", str(QUICKSTART), "--out", str(out), "--quiet", "--set", "train.epochs=1",
                     "--set", "data.train_limit=100"]) == 0
        (out / "metrics.json").unlink()
        if setup == "other":
            (out / "config.yaml").write_text((out / "config.yaml").read_text().replace("lr: 0.1", "lr: 0.2"))
        else:
            (out / "checkpoint.pkl").write_bytes(b"not a pickle")
    proc = subprocess.run([sys.executable, "-m", "crossbar_sim.cli", "run", "--resume", str(out), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_checkpoint_files_are_replaced_atomically(tmp_path):
    """No temporary file is left behind and the checkpoint is readable after every epoch."""
    out = tmp_path / "r"
    assert main(["run", str(QUICKSTART), "--out", str(out), "--quiet", "--set", "train.epochs=2",
                 "--set", "data.train_limit=100"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["accuracy.png", "checkpoint.pkl", "config.yaml", "corrections.png",
                                                     "history.csv", "learning.png", "metrics.json"]
    state = pickle.loads((out / "checkpoint.pkl").read_bytes())
    assert set(state["done"]) == {"crossbar", "ideal"} and state["current"] is None
    assert oct(os.stat(out / "metrics.json").st_mode & 0o077) != oct(0)  # not mkstemp's private mode


def test_a_finished_run_keeps_its_trained_state(tmp_path):
    """The checkpoint of a finished run holds each part's state after its last epoch: ``load_run`` rebuilds the
    trained network, which gives the test accuracy that metrics.json reports."""
    out = tmp_path / "r"
    assert main(["run", str(QUICKSTART), "--out", str(out), "--quiet", "--set", "train.epochs=2",
                 "--set", "data.train_limit=300"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    sc = load_scenario(out / "config.yaml")
    for part, reported in [("crossbar", metrics["test_accuracy"]), ("ideal", metrics["ideal"]["test_accuracy"])]:
        trainer = load_run(out, part)
        assert len(trainer.counters.history) == 2
        assert trainer.evaluate(trainer.data.x_test, trainer.data.y_test) == pytest.approx(reported, abs=1e-12)
        model = sc.hardware.device.build() if part == "crossbar" else get_model("ideal")()
        initial = Trainer(sc, trainer.data, model, label=part, progress=False).engine.weights()
        assert not all(np.array_equal(a, b) for a, b in zip(initial, trainer.engine.weights()))  # trained weights
    ideal = load_run(out, "ideal")  # the free equilibrium's layers: the last is what evaluate scored (MSE readout)
    layers = ideal.free_layers(ideal.data.x_test)
    assert [s.shape for s in layers] == [(len(ideal.data.x_test), n) for n in ideal.network.sizes[1:]]
    assert np.mean(layers[-1].argmax(1) == ideal.data.y_test) == pytest.approx(metrics["ideal"]["test_accuracy"],
                                                                               abs=1e-12)
    longer = load_run(out, "ideal", ["ep.free_steps=40"])  # an inference setting may change, the shape not
    assert longer.scenario.ep.free_steps == 40
    longer.evaluate(longer.data.x_test[:50], longer.data.y_test[:50])
    assert 0 < longer.eval_mean_steps <= 40
    with pytest.raises(ConfigError, match="network"):
        load_run(out, "ideal", ["network.sizes=[64,20,10]"])
    with pytest.raises(ConfigError, match="no config.yaml"):
        load_run(tmp_path, "ideal")
