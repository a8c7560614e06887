"""benchmarks/seeds/deep/steps_probe.py: a trained run read after n free steps, against the engine's own reading."""
import re
from pathlib import Path

import pytest

from crossbar_sim.cli import main as cli
from crossbar_sim.run import load_run
from tests.helpers.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def probe():
    return load_script("steps_probe")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two hidden layers under a softmax readout, so the free phase has feedback; tol 0, so the engine settles
    exactly ep.free_steps steps, as the probe does."""
    out = tmp_path_factory.mktemp("steps") / "run"
    assert cli(["run", str(ROOT / "scenarios" / "quickstart.yaml"), "--out", str(out), "--quiet",
                "--set", "train.epochs=3", "--set", "data.train_limit=600", "--set", "compare_ideal=false",
                "--set", "hardware.device.model=ideal", "--set", "ep.loss=cross_entropy",
                "--set", "network.sizes=[64, 30, 20, 10]", "--set", "ep.tol=0", "--set", "ep.omega=1.3"]) == 0
    return out


def _rows(text: str) -> dict[int, tuple[float, list[float]]]:
    """steps -> (accuracy, each layer's (largest, mean) change in the last step)."""
    rows = {}
    for m in re.finditer(r"^\| (\d+) \| ([\d.]+)% \| (.*) \|$", text, re.M):
        moved = [float(v) for cell in m.group(3).split(" | ") for v in cell.split(" / ")[2].split(", ")]
        rows[int(m.group(1))] = (float(m.group(2)) / 100, moved)
    return rows


@pytest.mark.parametrize("split", ["test", "train"])
def test_the_probe_scores_as_the_engine_after_the_runs_free_steps(probe, run, tmp_path, split):
    trainer = load_run(run)
    x, y = (trainer.data.x_test, trainer.data.y_test) if split == "test" else (trainer.data.x_train,
                                                                                 trainer.data.y_train)
    engine = trainer.evaluate(x[:120], y[:120])
    out = tmp_path / "p" / "steps.md"
    assert probe.main([str(run), "--steps", "1", "5", "20", "--limit", "120", "--split", split,
                       "--out", str(out)]) == 0
    text = out.read_text()
    assert f"120 {split} images, omega 1.3" in text
    rows = _rows(text)
    assert sorted(rows) == [1, 5, 20]
    assert rows[20][0] == pytest.approx(engine, abs=1.5 / 120)  # float32 torch against the engine: a tie at most
    assert engine > 0.2  # twice chance: the predictions are not one class
    largest, mean = rows[5][1][0::2], rows[5][1][1::2]
    assert all(0 < m <= b for m, b in zip(mean, largest))  # still moving after 5 steps; the mean under the largest
    assert all(v == 0 for v in rows[1][1])  # one step has no last step to compare with


def test_the_probe_relaxes_at_the_omega_asked_and_refuses_a_bad_one(probe, run, tmp_path):
    base, other = tmp_path / "a.md", tmp_path / "b.md"
    assert probe.main([str(run), "--steps", "3", "--limit", "60", "--out", str(base)]) == 0
    assert probe.main([str(run), "--steps", "3", "--limit", "60", "--omega", "1.0", "--out", str(other)]) == 0
    assert "omega 1.0," in other.read_text()
    assert _rows(base.read_text())[3][1] != _rows(other.read_text())[3][1]
    with pytest.raises(SystemExit):
        probe.main([str(run), "--omega", "2.0", "--out", str(tmp_path / "c.md")])
