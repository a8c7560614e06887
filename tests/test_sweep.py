"""Sweeps: planning and its errors, executors (processes, Dask LocalCluster, a scheduler address), and the
guarantees: same numbers with any number of workers, every point exactly once after a kill, worker deaths
retried, reports rebuilt from the run directories."""
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from crossbar_sim.cli import main
from crossbar_sim.config import ConfigError
from crossbar_sim.sweep import parse_grid, plan, split_values

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "name": "tiny", "seed": 3,
    "data": {"name": "digits", "batch_size": 32, "train_limit": 200},
    "network": {"sizes": [64, 20, 10]},
    "ep": {"free_steps": 8, "nudge_steps": 4},
    "train": {"epochs": 2, "lr": 0.1},
    "hardware": {"device": {"model": "linear_step", "bits": 4}, "tile": {"dac_bits": 0, "adc_bits": 0, "w_max": 0.5},
                 "energy": {"adc_pj": 2.0, "pulse_pj": 1.0}},
    "compare_ideal": False,
}
GRID = ["--grid", "hardware.device.bits=2,6", "--grid", "hardware.update.rounding=round,stochastic"]


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(BASE))
    return path


def sweep_cli(scenario, out, *extra, popen=False):
    cmd = [sys.executable, "-m", "crossbar_sim.cli", "sweep", str(scenario), "--out", str(out), "--quiet", *extra]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def table(out: Path) -> list[dict]:
    with open(out / "sweep.csv") as fh:
        return list(csv.DictReader(fh))


def numbers(out: Path) -> dict:
    """Every metric of every point except wall-clock times."""
    return {r["point"]: {k: v for k, v in r.items() if "seconds" not in k} for r in table(out)}


# ---- planning --------------------------------------------------------------------------------------

def test_grid_values_split_outside_brackets_and_parse_as_yaml():
    assert split_values("1, 2,[64, 100, 10],{a: 1, b: 2}") == ["1", "2", "[64, 100, 10]", "{a: 1, b: 2}"]
    assert parse_grid(["a.b=1,2.5,x,true", "network.sizes=[64, 10],[64, 5, 10]"]) == {
        "a.b": [1, 2.5, "x", True], "network.sizes": [[64, 10], [64, 5, 10]]}


def test_plan_names_points_by_value_and_gives_repeats_their_own_seeds(scenario):
    sweep = plan(scenario, "o", GRID[1::2], repeats=2)
    assert len(sweep.points) == 8
    names = [p.name for p in sweep.points]
    assert names[:2] == ["bits=2__rounding=round__r0", "bits=2__rounding=round__r1"]
    assert len(set(names)) == 8
    assert [p.seed for p in sweep.points[:2]] == [3, 4]
    p = sweep.points[-1]
    assert p.config["hardware"]["device"]["bits"] == 6 and p.config["hardware"]["update"]["rounding"] == "stochastic"
    assert p.config["seed"] == 4


def test_the_yaml_sweep_block_gives_the_grid_and_the_cli_adds_to_it(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "sweep": {"grid": {"hardware.device.bits": [3, 5]}, "repeats": 2}}))
    sweep = plan(path, "o", ["train.lr=0.1,0.2"])
    assert sweep.grid == {"hardware.device.bits": [3, 5], "train.lr": [0.1, 0.2]} and sweep.repeats == 2
    assert len(sweep.points) == 8
    assert main(["run", str(path), "--out", str(tmp_path / "r"), "--quiet"]) == 0  # `run` ignores the block


@pytest.mark.parametrize("args,message", [
    (["--grid", "hardware.device.bitz=1,2"], "hardware.device.bitz: unknown parameter of device model 'linear_step'"),
    (["--grid", "train.epoch=1,2"], "train.epoch: unknown key"),
    (["--grid", "hardware.device.bits=4,four"], "hardware.device.bits: expected an integer from 1 to 16, got 'four'"),
    (["--grid", "hardware.device.bits="], "--grid hardware.device.bits: empty grid"),
    ([], "sweep: empty grid; give --grid"),
    (["--grid", "hardware.device.bits=4,4"], "a value is given twice"),
    (["--grid", "hardware.device.bits=4", "--scheduler", "tcp://127.0.0.1:{port}", "--connect-timeout", "1"],
     "--scheduler tcp://127.0.0.1:{port}: cannot reach the scheduler"),
])
def test_bad_sweeps_exit_2_with_one_line_and_write_nothing(tmp_path, scenario, args, message):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [a.format(port=port) for a in args]
    before = set(tmp_path.iterdir())
    proc = subprocess.run([sys.executable, "-m", "crossbar_sim.cli", "sweep", str(scenario), "--quiet", *args,
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message.format(port=port) in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert set(tmp_path.iterdir()) == before  # nothing written, in the out dir or elsewhere


# ---- running -----------------------------------------------------------------------------------------

def test_one_worker_and_two_workers_give_the_same_numbers_and_a_full_report(tmp_path, scenario):
    one, two = tmp_path / "one", tmp_path / "two"
    for out, workers in ((one, "1"), (two, "2")):
        proc = sweep_cli(scenario, out, *GRID, "--workers", workers, "--executor", "processes")
        assert proc.returncode == 0, proc.stderr
    assert numbers(one) == numbers(two)
    rows = table(two)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"done"}
    assert {r["hardware.device.bits"] for r in rows} == {"2", "6"}
    assert all(float(r["energy.train_j.total"]) > 0 and int(r["operations.train.adc"]) > 0 for r in rows)
    stochastic_2 = next(r for r in rows if r["point"] == "bits=2__rounding=stochastic__r0")
    round_2 = next(r for r in rows if r["point"] == "bits=2__rounding=round__r0")
    assert int(stochastic_2["pulse_count"]) > int(round_2["pulse_count"])  # round loses the small updates
    for name in ("summary.md", "accuracy_vs_bits.png", "accuracy_vs_epoch.png", "costs.png"):
        assert (two / name).stat().st_size > 0
    summary = (two / "summary.md").read_text()
    assert summary.count("\n| 2 | ") == 2 and "energy (J)" in summary
    for point in rows:  # each point is a normal run directory
        assert (two / point["point"] / "metrics.json").is_file() and (two / point["point"] / "point.json").is_file()


def test_dask_local_cluster_and_scheduler_address_give_the_same_numbers(tmp_path, scenario):
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    local = tmp_path / "local"
    proc = sweep_cli(scenario, local, *GRID, "--workers", "2", "--executor", "dask")
    assert proc.returncode == 0, proc.stderr
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      local_directory=str(tmp_path / "dask")) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        remote = tmp_path / "remote"
        proc = sweep_cli(scenario, remote, *GRID, "--scheduler", cluster.scheduler_address)
        assert proc.returncode == 0, proc.stderr
    processes = tmp_path / "processes"
    assert sweep_cli(scenario, processes, *GRID, "--workers", "2", "--executor", "processes").returncode == 0
    assert numbers(local) == numbers(remote) == numbers(processes)
    assert not (local / ".dask-scratch").exists()


def _finished(out: Path) -> list[Path]:
    return sorted(out.glob("*/metrics.json"))


def test_a_killed_sweep_restarted_finishes_every_point_exactly_once(tmp_path, scenario):
    out = tmp_path / "s"
    grid = ["--grid", "hardware.device.bits=2,3,4,5,6,8", "--set", "train.epochs=3", "--set", "data.train_limit=600"]
    proc = sweep_cli(scenario, out, *grid, "--workers", "2", "--executor", "processes", popen=True)
    while proc.poll() is None and len(_finished(out)) < 2:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    first = {p: p.stat().st_mtime_ns for p in _finished(out)}
    assert 2 <= len(first) < 6, "the sweep was not killed mid-way"
    proc = sweep_cli(scenario, out, *grid, "--workers", "2", "--executor", "processes")
    assert proc.returncode == 0, proc.stderr
    rows = table(out)
    assert sorted(r["point"] for r in rows) == sorted({r["point"] for r in rows})
    assert len(rows) == 6 and all(r["status"] == "done" for r in rows)
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())  # finished points were not run again
    whole = tmp_path / "whole"
    assert sweep_cli(scenario, whole, *grid, "--workers", "1", "--executor", "processes").returncode == 0
    assert numbers(out) == numbers(whole)


def _workers_of(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find the workers")
def test_a_point_whose_worker_dies_is_run_again(tmp_path, scenario):
    out = tmp_path / "s"
    grid = ["--grid", "hardware.device.bits=2,4,6", "--set", "train.epochs=3", "--set", "data.train_limit=600"]
    proc = sweep_cli(scenario, out, *grid, "--workers", "2", "--executor", "processes", popen=True)
    started = lambda: [d for d in out.glob("bits=*") if (d / "config.yaml").exists()]  # noqa: E731
    while proc.poll() is None and not (started() and len(_finished(out)) == 0):
        time.sleep(0.005)
    victims = _workers_of(proc.pid)
    assert victims and proc.poll() is None
    os.kill(victims[0], signal.SIGKILL)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    rows = table(out)
    assert len(rows) == 3 and all(r["status"] == "done" for r in rows)


def test_a_failing_point_is_reported_and_the_others_finish(tmp_path, scenario):
    out = tmp_path / "s"
    proc = sweep_cli(scenario, out, "--grid", "train.lr=0.1,1.0e300", "--set", "hardware.device={model: ideal}",
                     "--workers", "1", "--executor", "processes")
    assert proc.returncode == 1
    assert "1 point(s) failed" in proc.stderr
    rows = {r["point"]: r for r in table(out)}
    assert rows["lr=0.1__r0"]["status"] == "done"
    bad = rows["lr=1.0e300__r0"]
    assert bad["status"] == "failed" and "the update made a weight NaN or inf" in bad["error"]
    assert "Failed points" in (out / "summary.md").read_text()


def test_report_rebuilds_from_the_run_directories(tmp_path, scenario, capsys):
    out = tmp_path / "s"
    assert main(["sweep", str(scenario), "--out", str(out), "--quiet", "--grid", "hardware.device.bits=3,5",
                 "--workers", "1", "--executor", "processes"]) == 0
    (out / "sweep.csv").unlink()
    (out / "summary.md").write_text("stale")
    assert main(["report", str(out)]) == 0
    assert len(table(out)) == 2 and "stale" not in (out / "summary.md").read_text()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_a_worker_without_the_sweep_directory_sends_the_files_back(tmp_path, scenario):
    """A cluster worker that cannot see DIR (no shared filesystem) runs in scratch space and returns the files,
    which the client writes."""
    from crossbar_sim.sweep import _write_returned, run_point

    point = plan(scenario, tmp_path / "s", ["hardware.device.bits=3"]).points[0]
    elsewhere = tmp_path / "not-mounted-here" / point.name
    result = run_point(str(elsewhere), point.config, point.record())
    assert result["status"] == "done" and not elsewhere.parent.exists()
    assert {"config.yaml", "metrics.json", "history.csv", "accuracy.png", "point.json"} <= set(result["files"])
    out = tmp_path / "s"
    out.mkdir()
    _write_returned(out / point.name, result["files"])
    metrics = json.loads((out / point.name / "metrics.json").read_text())
    assert metrics["seed"] == 3 and yaml.safe_load((out / point.name / "config.yaml").read_text()) == point.config


def test_the_summary_of_a_regression_sweep_reports_the_loss():
    from crossbar_sim.sweep_report import summary_markdown

    rows = [{"status": "done", "network.p": p, "test_loss": v, "train_loss": v / 2, "pulse_count": 0,
             "max_device_pulses": 0, "wall_seconds": 1.0} for p, v in ((0.0, 0.04), (0.0, 0.06), (0.1, 0.03))]
    text = summary_markdown(rows, ["network.p"])
    head, _, first, second = text.splitlines()[:4]
    assert "test loss" in head and "train loss" in head and "accuracy" not in head
    assert "0.0500 ± 0.0141" in first and "0.0300" in second
