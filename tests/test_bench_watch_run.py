"""benchmarks/seeds/deep/watch_run.py: a run's checkpoints scored between its epochs."""
import csv
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crossbar_sim import checkpoint
from crossbar_sim.config import load_scenario
from crossbar_sim.run import dataset_for, load_run
from crossbar_sim.trainer import Trainer
from tests.helpers.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
OVER = ["hardware.device.model=ideal", "compare_ideal=false", "data.train_limit=256", "train.epochs=2",
        "ep.loss=cross_entropy"]


@pytest.fixture(scope="module")
def watch():
    return load_script("watch_run")


@pytest.fixture(scope="module")
def states():
    """The trainer's state after epoch 1, and after 3 batches of epoch 2, as a run's checkpoints hold them."""
    sc = load_scenario(ROOT / "scenarios" / "quickstart.yaml", overrides=OVER)
    trainer = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    saved = {}

    def on_batch():
        if len(trainer.counters.history) == 1 and trainer.batches_done() == 3:
            saved["inside"] = pickle.dumps(trainer.state())

    trainer.fit(on_epoch=lambda row: saved.setdefault("end", pickle.dumps(trainer.state())), on_batch=on_batch)
    return sc, saved


def _run_dir(path: Path, sc, state: bytes) -> Path:
    path.mkdir()
    (path / "config.yaml").write_text(yaml.safe_dump(sc.to_dict(), sort_keys=False))
    checkpoint.save(path, {"scenario": sc.to_dict(), "done": {}, "final": {}, "current": "crossbar",
                           "trainer": pickle.loads(state)})
    return path


@pytest.mark.parametrize("where", ["end", "inside"])
def test_a_checkpoint_is_scored_as_the_engine_scores_its_weights(watch, states, tmp_path, where):
    sc, saved = states
    run = _run_dir(tmp_path / "run", sc, saved[where])
    out = tmp_path / "w" / "watch.csv"
    assert watch.main([str(run), "--once", "--limit", "150", "--out", str(out)]) == 0
    assert watch.main([str(run), "--once", "--limit", "150", "--out", str(out)]) == 0  # appended, one header
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 and rows[0] == {**rows[1], "clock": rows[0]["clock"], "eval_seconds": rows[0]["eval_seconds"]}
    trainer = load_run(run)
    want = trainer.evaluate(trainer.data.x_test[:150], trainer.data.y_test[:150])
    row = rows[0]
    assert float(row["test_accuracy"]) == pytest.approx(want, abs=1e-6) and row["test_images"] == "150"
    bs = sc.data.batch_size
    if where == "end":
        assert (row["epoch"], row["batch"], row["running_train_accuracy"]) == ("1", "0", "")
        assert row["trained_to"] == "after epoch 1"
    else:
        partial = pickle.loads(saved["inside"])["partial"]
        assert (row["epoch"], row["batch"]) == ("2", "3")
        assert float(row["running_train_accuracy"]) == pytest.approx(partial["score"] / (3 * bs), abs=1e-6)
        assert row["trained_to"] == "after epoch 1 and 3 batches of the next"


def test_a_directory_without_a_run_is_refused(watch, tmp_path):
    with pytest.raises(SystemExit):
        watch.main([str(tmp_path), "--once", "--out", str(tmp_path / "w.csv")])
    (tmp_path / "config.yaml").write_text("name: x\n")
    assert watch.main([str(tmp_path), "--once", "--out", str(tmp_path / "w.csv")]) == 1  # no checkpoint yet
    assert not (tmp_path / "w.csv").exists()


def test_the_twin_is_watched_every_n_batches(tmp_path):
    """bp_twin.py --watch: a row every N batches, the epoch's test score and training accuracy at its end."""
    out = tmp_path / "bp"
    over = ["train.epochs=2", "ep.loss=cross_entropy", "data.train_limit=320", "data.batch_size=32"]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "seeds" / "deep" / "bp_twin.py"),
                           str(ROOT / "scenarios" / "quickstart.yaml"), "--out", str(out), "--threads", "1",
                           "--watch", "5", "--watch-limit", "1000", *[a for o in over for a in ("--set", o)]],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((out / "watch.csv").open()))
    assert [(r["epoch"], r["batch"]) for r in rows] == [("1", "5"), ("1", "10"), ("2", "5"), ("2", "10")]
    history = list(csv.DictReader((out / "history.csv").open()))
    assert len(history) == 2 and rows[0]["test_images"] == "360"  # the digits' whole test split, under the limit
    for end, h in zip((rows[1], rows[3]), history):
        assert float(end["test_accuracy"]) == pytest.approx(float(h["test_accuracy"]), abs=1e-6)
        assert float(end["running_train_accuracy"]) == pytest.approx(float(h["train_accuracy"]), abs=1e-6)
    refused = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "seeds" / "deep" / "bp_twin.py"),
                              str(ROOT / "scenarios" / "quickstart.yaml"), "--out", str(out), "--watch", "0"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "--watch 0" in refused.stderr
