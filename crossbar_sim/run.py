"""One scenario, end to end: data, the crossbar run, its ideal twin, and the run directory."""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import replace
from pathlib import Path

from crossbar_sim import blas, checkpoint, costs, report
from crossbar_sim.config import ConfigError, Scenario, load_scenario, same_scenario
from crossbar_sim.data import load_dataset
from crossbar_sim.trainer import Trainer
from device_models import get_model


def _summary(trainer: Trainer) -> dict:
    c = trainer.counters
    last = c.history[-1]
    m = trainer.metric
    out = {
        f"test_{m}": last[f"test_{m}"],
        f"train_{m}": last[f"train_{m}"],
        "log_spread": last["log_spread"],
        "wall_seconds": trainer.wall_seconds(),
        "settle_steps": {"total": c.steps, "phases": c.phases,
                         "mean_free": c.free_steps / max(c.free_phases, 1)},
        "mvm_count": c.mvm,
        "pulse_count": trainer.engine.pulses,
        "max_device_pulses": trainer.engine.max_device_pulses,
        "operations": {"train": costs.op_counts(c.train_ops), "eval": costs.op_counts(c.eval_ops)},
        "programming": trainer.engine.programming(),
        "diagnostics": trainer.diag.summary(),
    }
    energy = trainer.scenario.hardware.energy
    if energy.enabled:
        out["energy"] = {
            "per_operation_pj": dataclasses.asdict(energy),
            "train_j": costs.energy_j(energy, c.train_ops, trainer.engine.pulses),
            "eval_j": costs.energy_j(energy, c.eval_ops, 0),
            "per_epoch_j": [row["energy_j"] for row in c.history],
        }
    return out


def dataset_for(scenario: Scenario):
    """The scenario's data, with ``data.train_limit`` and ``data.test_limit`` applied."""
    d = scenario.data
    dataset = load_dataset(d.name, data_dir=d.dir, test_fraction=d.test_fraction, seed=scenario.seed)
    if d.train_limit:
        dataset = replace(dataset, x_train=dataset.x_train[: d.train_limit], y_train=dataset.y_train[: d.train_limit])
    if d.test_limit:
        dataset = replace(dataset, x_test=dataset.x_test[: d.test_limit], y_test=dataset.y_test[: d.test_limit])
    return dataset


def load_run(out: str | Path, part: str = "crossbar", overrides: list[str] | tuple = ()) -> Trainer:
    """A trainer holding a run's network as its checkpoint left it: trained, for a finished run; for one still
    running or stopped, after its last finished epoch or, from a mid-epoch checkpoint, part way into the next
    (``Trainer.trained_to()`` says which). ``overrides`` (``KEY=VALUE``) change the scenario for what
    follows, e.g. ``ep.free_steps`` for a longer settle at inference; the network's shape must stay the same."""
    out = Path(out)
    if not (out / "config.yaml").is_file():
        raise ConfigError(f"{out}: not a run directory (no config.yaml)")
    saved = checkpoint.load(out)
    if saved is None:
        raise checkpoint.CheckpointError(f"{out}: no {checkpoint.FILE} (the run has not finished an epoch)")
    state = saved.get("final", {}).get(part) or (saved["trainer"] if saved["current"] == part else None)
    if state is None:
        raise checkpoint.CheckpointError(f"{out / checkpoint.FILE}: no state of the {part!r} part (a run finished "
                                         "before checkpoints kept trained states, or a part not run yet)")
    scenario = load_scenario(out / "config.yaml", list(overrides))
    trained = load_scenario(raw=saved["scenario"]).to_dict()  # resolved again: keys added since take defaults
    if scenario.to_dict()["network"] != trained["network"]:
        raise ConfigError(f"{out}: overrides may not change the trained network (network.*): {list(overrides)}")
    model = scenario.hardware.device.build() if part == "crossbar" else get_model("ideal")()
    trainer = Trainer(scenario, dataset_for(scenario), model, label=part, progress=False)
    try:
        trainer.load_state(state)
    except (ValueError, KeyError) as exc:  # e.g. another tile size: arrays of other shapes
        raise ConfigError(f"{out}: the overrides {list(overrides)} do not fit the trained state ({exc})") from None
    return trainer


CHECKPOINT_SECONDS = 600.0  # the longest a run goes without a checkpoint, inside an epoch too


def run_scenario(scenario: Scenario, out: str | Path, progress: bool = True, echo=print, resume: bool = False,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS) -> dict:
    """Train the scenario's crossbar network (and its ideal twin when ``compare_ideal``); write ``out``.

    A checkpoint and ``history.csv`` (the epochs so far) are written after every epoch, and inside an epoch a
    checkpoint after the first batch that ends ``checkpoint_seconds`` after the last one (0: after every batch;
    the numbers do not depend on it). With ``resume`` the run continues from the checkpoint in ``out`` (the
    scenario must be the one it was started with), at an epoch's end or at the batch it was saved after.
    ``metrics.json`` is written last, so its presence marks a finished run. A finished part's trained state
    (weights, devices, clock, RNG streams) stays in the checkpoint under ``final``, for tools that study the
    trained network (``Trainer.load_state`` reads it).

    Returns:
        The metrics written to ``metrics.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = checkpoint.load(out) if resume else None
    if saved is not None and not same_scenario(saved["scenario"], scenario.to_dict()):
        raise checkpoint.CheckpointError(f"{out / checkpoint.FILE}: written for another scenario than "
                                         f"{out / 'config.yaml'}; start a new run directory")
    report.write_config(out, scenario.to_dict())
    dataset = dataset_for(scenario)
    model = scenario.hardware.device.build()
    plan = [("crossbar", model)]
    if scenario.compare_ideal and not model.ideal:
        plan.append(("ideal", get_model("ideal")()))
    done = saved["done"] if saved else {}  # part name -> summary with history, for the parts finished
    final = saved.get("final", {}) if saved else {}  # part name -> its trainer's state after the last epoch
    for name, m in plan:
        if name in done:
            m = report.metric_of(done[name])
            echo(f"{name:8s} finished before the resume: test {m} {done[name][f'test_{m}']:.4f}")
            continue
        trainer = Trainer(scenario, dataset, m, label=name, progress=progress)
        if saved and saved["current"] == name:
            trainer.load_state(saved["trainer"])
            inside = trainer.batches_done()
            echo(f"{name:8s} resumed after epoch {len(trainer.counters.history)}"
                 + ("" if inside is None else f" and {inside} batches of the next"))
        last_save = [time.monotonic()]

        def save(n=name, t=trainer):
            checkpoint.save(out, {"scenario": scenario.to_dict(), "done": done, "final": final, "current": n,
                                  "trainer": t.state()})
            last_save[0] = time.monotonic()

        def on_batch():
            if time.monotonic() - last_save[0] >= checkpoint_seconds:
                save()

        def on_epoch(row, n=name, t=trainer):
            m = t.metric
            echo(f"{n:8s} epoch {row['epoch']:3d}  train {m} {row[f'train_{m}']:.4f}  test {m} {row[f'test_{m}']:.4f}")
            # The epochs so far as plain CSV, so that a run in progress can be followed (and read) without its pickle;
            # written first, so it never lags the checkpoint (a resume rewrites it).
            report.write_history(out, {**{k: v["history"] for k, v in done.items()}, n: t.counters.history})
            save()

        trainer.fit(on_epoch=on_epoch, on_batch=on_batch)
        final[name] = trainer.state()  # before any eval_delay drift below
        summary = _summary(trainer)
        delay = scenario.hardware.time.eval_delay
        if delay > 0:
            # Inference after the devices have drifted for a while without pulses.
            trainer.engine.advance(trainer.engine.now + delay)
            with blas.limit_threads(1):
                summary[f"test_{trainer.metric}_after_delay"] = trainer.evaluate(dataset.x_test, dataset.y_test)
            echo(f"{name:8s} test {trainer.metric} {delay:g} s after training: "
                 f"{summary[f'test_{trainer.metric}_after_delay']:.4f}")
        done[name] = {**summary, "history": trainer.counters.history}
        if name == "crossbar":
            report.plot_corrections(out, trainer.network.sizes, trainer.network.edges,
                                    trainer.diag.mean_abs_corrections(), f"{scenario.name}: {model.name}, mean |dW|")
        checkpoint.save(out, {"scenario": scenario.to_dict(), "done": done, "final": final, "current": None,
                              "trainer": None})
    metrics = {"name": scenario.name, "seed": scenario.seed, "device": model.name, **done["crossbar"]}
    if "ideal" in done:
        metrics["ideal"] = done["ideal"]
    runs = {name: done[name]["history"] for name, _ in plan}
    report.write_history(out, runs)
    report.plot_accuracy(out, runs, f"{scenario.name}: {model.name}")
    report.plot_learning(out, {name: done[name]["diagnostics"] for name, _ in plan})
    report.write_metrics(out, metrics)
    return metrics


def resume_run(out: str | Path, progress: bool = True, echo=print,
               checkpoint_seconds: float = CHECKPOINT_SECONDS) -> tuple[Scenario, dict]:
    """Continue the run in ``out`` from its last checkpoint (or return its metrics when it has finished)."""
    out = Path(out)
    config = out / "config.yaml"
    if not out.is_dir() or not config.is_file():
        raise ConfigError(f"--resume {out}: not a run directory (no config.yaml); give the --out of a `crossbar-sim run`")
    scenario = load_scenario(config)
    metrics_file = out / "metrics.json"
    if metrics_file.is_file():
        echo(f"{out}: the run had finished; nothing to do")
        return scenario, json.loads(metrics_file.read_text())
    return scenario, run_scenario(scenario, out, progress=progress, echo=echo, resume=True,
                                  checkpoint_seconds=checkpoint_seconds)
