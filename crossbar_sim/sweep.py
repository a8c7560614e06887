"""Sweeps: one scenario over a grid of key values and repeats; every point is a normal run directory.

``crossbar-sim sweep SCENARIO.yaml --grid hardware.device.bits=2,4,8 --repeats 3 --out DIR`` (or a
``sweep:`` block in the YAML, ``{grid: {key.path: [values]}, repeats: N}``) plans the points, checks every
point's scenario before anything runs, and hands the points to an executor: a Dask ``LocalCluster`` (one
single-threaded worker process per core), an existing Dask scheduler, or, without Dask, a pool of local
processes. Workers stay up between points, so Numba's compiled kernels load once per worker.

Nothing is lost or counted twice, by construction:

* a point writes only inside its own directory, every file atomically, ``metrics.json`` last;
* a point with ``metrics.json`` is finished and is skipped by a rerun; an unfinished one continues from its
  last checkpoint;
* a point whose worker dies is sent again (up to :data:`MAX_ATTEMPTS` starts);
* ``sweep.csv`` and the report are rebuilt from the point directories, never appended to.

Repeat ``r`` of a point runs with seed ``scenario seed + r`` (recorded in its ``point.json`` and
``config.yaml``), so repeats differ and every number can be rerun alone with ``crossbar-sim run``.
"""
from __future__ import annotations

import concurrent.futures as cf
import copy
import fcntl
import itertools
import json
import os
import re
import shutil
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import yaml

from crossbar_sim.config import ConfigError, apply_override, load_scenario, read_yaml, same_scenario, set_key
from crossbar_sim.report import write_atomic

MAX_ATTEMPTS = 3  # starts of one point before a worker death counts as its failure
SWEEP_FILE = "sweep.json"
POINT_FILE = "point.json"
ERROR_FILE = "error.txt"


@dataclass(frozen=True)
class Point:
    """One run of the sweep: its directory name, swept values, repeat index, seed and resolved scenario."""

    name: str
    values: dict
    repeat: int
    seed: int
    config: dict

    def record(self) -> dict:
        return {"name": self.name, "values": self.values, "repeat": self.repeat, "seed": self.seed}


@dataclass
class Sweep:
    out: Path
    grid: dict[str, list]
    repeats: int
    points: list[Point]


# ---- planning ---------------------------------------------------------------------------------------

def split_values(text: str) -> list[str]:
    """Split ``1,2,[64, 100, 10]`` at the commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def parse_grid(assignments: list[str]) -> dict[str, list]:
    """``--grid key.path=v1,v2`` options -> {key: [values]}; each value is parsed as YAML."""
    grid = {}
    for a in assignments:
        key, sep, text = a.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid {a}: expected KEY.PATH=VALUE1,VALUE2,...")
        texts = [t for t in split_values(text) if t]
        if not texts:
            raise ConfigError(f"--grid {key}: empty grid; give at least one value, e.g. {key}=1,2")
        try:
            grid[key] = [yaml.safe_load(t) for t in texts]
        except yaml.YAMLError as exc:
            raise ConfigError(f"--grid {key}: cannot parse the values {text!r} ({exc.problem})") from None
    return grid


def _block(block) -> tuple[dict, int]:
    """The YAML ``sweep:`` block -> (grid, repeats)."""
    if block is None:
        return {}, 1
    if not isinstance(block, dict):
        raise ConfigError(f"sweep: expected a mapping with grid and repeats, got {block!r}")
    unknown = set(block) - {"grid", "repeats"}
    if unknown:
        raise ConfigError(f"sweep.{sorted(unknown)[0]}: unknown key; known keys here: grid, repeats")
    grid = block.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"sweep.grid: expected a mapping of key.path: [values], got {grid!r}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.grid.{key}: expected a non-empty list of values, got {values!r}")
    repeats = block.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ConfigError(f"sweep.repeats: expected an integer >= 1, got {repeats!r}")
    return dict(grid), repeats


def _short_keys(keys: list[str]) -> dict[str, str]:
    """The shortest dotted suffix of each key that no other key ends with."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            short = ".".join(parts[-n:])
            if not any(k != key and (k == short or k.endswith("." + short)) for k in keys):
                break
        out[key] = short
    return out


def _label(value) -> str:
    text = "-".join(map(str, value)) if isinstance(value, list) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", text)


def plan(scenario_path, out=None, grid_args=(), repeats=None, overrides=()) -> Sweep:
    """Every point of the sweep, each scenario validated (errors name the key and the value); ``out``
    defaults to ``sweeps/<scenario name>``."""
    raw = read_yaml(scenario_path)
    grid, reps = _block(raw.pop("sweep", None))
    for assignment in overrides:
        apply_override(raw, assignment)
    grid.update(parse_grid(list(grid_args)))
    if repeats is not None:
        if repeats < 1:
            raise ConfigError(f"--repeats: expected an integer >= 1, got {repeats}")
        reps = repeats
    if not grid:
        raise ConfigError("sweep: empty grid; give --grid KEY.PATH=V1,V2 or a sweep.grid block in the scenario")
    for key, values in grid.items():
        labels = [_label(v) for v in values]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"--grid {key}: a value is given twice ({values})")
    base = load_scenario(raw=raw)  # the base scenario's own errors first
    short = _short_keys(list(grid))
    points = []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo))
        point_raw = copy.deepcopy(raw)
        for key, value in values.items():
            set_key(point_raw, key, value)
        try:
            seed0 = load_scenario(raw=point_raw).seed
        except ConfigError as exc:
            where = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise ConfigError(f"{exc} (sweep point {where})") from None
        for r in range(reps):
            scenario = load_scenario(raw=point_raw, seed=seed0 + r)
            name = "__".join(f"{short[k]}={_label(v)}" for k, v in values.items()) + f"__r{r}"
            points.append(Point(name, values, r, scenario.seed, scenario.to_dict()))
    return Sweep(Path(out) if out else Path("sweeps") / base.name, grid, reps, points)


# ---- one point, on a worker ------------------------------------------------------------------------

def run_point(point_dir: str, config: dict, record: dict, threads: int | None = None) -> dict:
    """Run (or continue) one point; called in a worker process. Never raises for a failing run: the error
    is written to ``error.txt`` and returned. A worker that cannot see the sweep directory (a cluster
    without a shared filesystem) runs in a scratch directory and returns the files for the client to write.
    """
    import numba

    from crossbar_sim.run import run_scenario

    if threads:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    out = Path(point_dir)
    scratch = None if out.parent.is_dir() else Path(tempfile.mkdtemp(prefix="crossbar-sim-point-"))
    where = scratch or out
    try:
        if (where / "metrics.json").is_file():
            return {"status": "done"}
        where.mkdir(exist_ok=True)
        write_atomic(where / POINT_FILE, json.dumps(record, indent=2) + "\n")
        resume = (where / "config.yaml").is_file()
        run_scenario(load_scenario(raw=config), where, progress=False, echo=lambda *a, **k: None, resume=resume)
        (where / ERROR_FILE).unlink(missing_ok=True)
        result = {"status": "done"}
    except Exception as exc:  # any failure is this point's, not the sweep's
        from crossbar_sim.cli import USER_ERRORS

        message = str(exc) if isinstance(exc, USER_ERRORS) else f"{type(exc).__name__}: {exc}"
        detail = message if isinstance(exc, USER_ERRORS) else traceback.format_exc()
        write_atomic(where / ERROR_FILE, detail + "\n")
        result = {"status": "failed", "error": message}
    if scratch is not None:
        result["files"] = {p.name: p.read_bytes() for p in scratch.iterdir()
                           if p.is_file() and p.name != "checkpoint.pkl" and not p.name.startswith(".")}
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _write_returned(out: Path, files: dict[str, bytes]) -> None:
    """Files a scratch-directory worker sent back, written atomically with ``metrics.json`` last."""
    out.mkdir(exist_ok=True)
    for name in sorted(files, key=lambda n: n == "metrics.json"):
        write_atomic(out / name, files[name])


def _init_worker() -> None:
    """Worker processes die with the sweep that started them (Linux), so no orphan writes on after a kill."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


# ---- executors ---------------------------------------------------------------------------------------

class _Processes:
    """Local worker processes (``spawn``), restarted when one dies."""

    name = "local processes"

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None

    def executor(self) -> cf.Executor:
        import multiprocessing

        self.pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init_worker)
        return self.pool

    def close(self, abort: bool = False) -> None:
        """Wait for the running points, or, on ``abort`` (Ctrl-C), kill the workers at once: every point
        keeps its last checkpoint, so nothing is lost."""
        if self.pool is None:
            return
        if abort:
            for proc in list(getattr(self.pool, "_processes", {}).values()):
                proc.kill()
        self.pool.shutdown(wait=not abort, cancel_futures=True)


class _Dask:
    """A Dask cluster: a new ``LocalCluster`` or an existing scheduler."""

    def __init__(self, workers: int, scheduler: str | None, scratch: Path, timeout: float):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("--scheduler needs Dask: pip install -e \".[cluster]\"") from None
        self.cluster = None
        self.scratch = scratch
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConfigError(f"--scheduler {scheduler}: cannot reach the scheduler ({exc})") from None
            self.name = f"Dask scheduler {scheduler}"
            return
        self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                    local_directory=str(scratch), host="127.0.0.1", silence_logs=40)
        self.client = Client(self.cluster)
        self.name = f"Dask LocalCluster ({workers} worker processes)"

    def executor(self) -> cf.Executor:
        return self.client.get_executor(pure=False)

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def close(self, abort: bool = False) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()  # stops the local workers, running points included
        shutil.rmtree(self.scratch, ignore_errors=True)


def _have_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


# ---- the sweep -------------------------------------------------------------------------------------

class _Lock:
    """One sweep at a time per directory."""

    def __init__(self, out: Path):
        self.fh = open(out / ".sweep.lock", "w")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise ConfigError(f"{out}: another sweep is running in this directory") from None

    def release(self) -> None:
        self.fh.close()


def point_state(out: Path, point: Point) -> str:
    """``done``, ``failed``, ``partial`` (started, not finished) or ``new``; a directory holding another
    scenario's run is an error, so a rerun never mixes two sweeps' numbers."""
    d = out / point.name
    config = d / "config.yaml"
    if config.is_file():
        if not same_scenario(yaml.safe_load(config.read_text()), point.config):
            raise ConfigError(f"{d}: holds a run of another scenario than this sweep's point; "
                              "use a new --out or remove that directory")
    if (d / "metrics.json").is_file():
        return "done"
    if (d / ERROR_FILE).is_file():
        return "failed"
    return "partial" if config.is_file() else "new"


def run_sweep(sweep: Sweep, workers: int | None = None, scheduler: str | None = None, executor: str = "auto",
              threads: int | None = None, progress: bool = True, echo=print, connect_timeout: float = 10.0) -> dict:
    """Run every unfinished point; returns ``{point name: status}``; writes ``sweep.csv`` and the report."""
    from tqdm import tqdm

    from crossbar_sim import sweep_report

    out = sweep.out
    cores = os.cpu_count() or 1
    workers = workers or cores
    # An unreachable scheduler is found before anything is written.
    backend = _Dask(workers, scheduler, out / ".dask-scratch", connect_timeout) if scheduler else None
    lock = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = _Lock(out)
        status = {p.name: point_state(out, p) for p in sweep.points}
        write_atomic(out / SWEEP_FILE, json.dumps({"grid": sweep.grid, "repeats": sweep.repeats,
                                                   "points": [p.record() for p in sweep.points]}, indent=2) + "\n")
        todo = [p for p in sweep.points if status[p.name] != "done"]
        if backend is None:
            use_dask = executor == "dask" or (executor == "auto" and _have_dask())
            backend = _Dask(workers, None, out / ".dask-scratch", connect_timeout) if use_dask else _Processes(workers)
        if threads is None:
            threads = 1 if scheduler else max(1, cores // backend.workers)
        done_before = len(sweep.points) - len(todo)
        echo(f"sweep: {len(sweep.points)} points ({done_before} finished before), {backend.name}, "
             f"{threads} thread(s) per point; results in {out}")
        with tqdm(total=len(sweep.points), initial=done_before, desc="sweep", unit="point", disable=not progress,
                  dynamic_ncols=True) as bar:
            _execute(sweep, todo, backend, threads, status, bar)
        sweep_report.write_report(out)
    except KeyboardInterrupt:
        if backend is not None:
            backend.close(abort=True)
            backend = None
        raise
    finally:
        if backend is not None:
            backend.close()
        if lock is not None:
            lock.release()
    return status


def _execute(sweep: Sweep, todo: list[Point], backend, threads: int, status: dict, bar) -> None:
    from concurrent.futures.process import BrokenProcessPool

    from crossbar_sim import sweep_report

    out = sweep.out
    deaths = {p.name: 0 for p in todo}
    while todo:
        pool = backend.executor()
        futures = {pool.submit(run_point, str(out / p.name), p.config, p.record(), threads): p for p in todo}
        todo = []
        pending = set(futures)
        while pending:
            finished, pending = cf.wait(pending, timeout=1.0, return_when=cf.FIRST_COMPLETED)
            for f in finished:
                p = futures[f]
                try:
                    result = f.result()
                except BrokenProcessPool:  # a worker died: the points it took down go again
                    deaths[p.name] += (out / p.name / "config.yaml").is_file()  # only those that had started
                    if deaths[p.name] < MAX_ATTEMPTS:
                        todo.append(p)
                        continue
                    result = {"status": "failed", "error": f"its worker died {deaths[p.name]} times"}
                    write_atomic(out / p.name / ERROR_FILE, result["error"] + "\n")
                except Exception as exc:  # e.g. Dask's KilledWorker after repeated worker deaths
                    result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                if "files" in result:
                    _write_returned(out / p.name, result["files"])
                status[p.name] = result["status"]
                bar.update(1)
                sweep_report.write_table(out)
            # a process pool marks a point "running" once it is queued for a worker: cap at the workers
            started = sum(1 for f in pending if f.running())
            running = min(started, backend.workers) or min(len(pending), backend.workers)
            bar.set_postfix(running=running, failed=sum(s == "failed" for s in status.values()), refresh=True)
        if todo and isinstance(backend, _Processes):
            backend.close()  # the broken pool; a new one takes the points left
