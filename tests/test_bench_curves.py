"""benchmarks/seeds/deep/curves.py: EP runs beside their twins, epoch by epoch, from their history files."""
from pathlib import Path

import pytest

from tests.helpers.scripts import load_script


@pytest.fixture
def curves():
    return load_script("curves")


def _write(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "history.csv").write_text(text)
    return path


def test_the_table_pairs_each_ep_epoch_with_the_twin_after_it(curves, tmp_path, capsys):
    ep = _write(tmp_path / "ep", "run,epoch,train_accuracy,test_accuracy,mean_free_steps\n"
                                 "ideal,1,0.5,0.5,10\ncrossbar,1,0.6,0.7398,95.69\ncrossbar,2,0.75,0.8,97.8\n")
    twin = _write(tmp_path / "bp", "epoch,train_accuracy,test_accuracy,seconds\n1,0.6,0.75,1\n2,0.8,0.83,2\n"
                                   "3,0.85,0.86,3\n")
    out = tmp_path / "t" / "curves.md"
    assert curves.main([f"a, b=c={ep}:{twin}", "--out", str(out), "--plot", str(tmp_path / "c.png"),
                        "--target", "88"]) == 0
    text = out.read_text()
    assert text == capsys.readouterr().out
    assert "### a, b=c" in text
    assert "| 1 | 73.98% (60.00%, 95.7) | 75.00% | 1.02 points |" in text
    assert "| 2 | 80.00% (75.00%, 97.8) | 83.00% | 3.00 points |" in text
    assert "| 3 |" not in text  # EP has not reached epoch 3
    assert "Twin after its 3 epochs: 86.00%." in text
    assert (tmp_path / "c.png").stat().st_size > 0


@pytest.mark.parametrize("arg", ["nolabel", "=a:b", "x=a", "x=:b"])
def test_a_malformed_pair_is_refused(curves, arg):
    with pytest.raises(SystemExit, match="LABEL=EP_DIR:TWIN_DIR"):
        curves.parse_pair(arg)


def test_a_directory_without_history_is_refused(curves, tmp_path):
    with pytest.raises(SystemExit, match="no history.csv"):
        curves.read_history(tmp_path)


def test_a_history_without_the_crossbar_runs_epochs_is_refused(curves, tmp_path):
    run = _write(tmp_path / "ep", "run,epoch,train_accuracy,test_accuracy\nideal,1,0.5,0.5\n")
    with pytest.raises(SystemExit, match="no finished epoch of the 'crossbar' run"):
        curves.read_history(run)
