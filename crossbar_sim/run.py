"""One scenario, end to end: data, the crossbar run, its ideal twin, and the run directory."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from crossbar_sim import blas, report
from crossbar_sim.config import Scenario
from crossbar_sim.data import load_dataset
from crossbar_sim.trainer import Trainer
from device_models import get_model


def _summary(trainer: Trainer, seconds: float) -> dict:
    c = trainer.counters
    last = c.history[-1]
    return {
        "test_accuracy": last["test_accuracy"],
        "train_accuracy": last["train_accuracy"],
        "wall_seconds": seconds,
        "settle_steps": {"total": c.steps, "phases": c.phases,
                         "mean_free": c.free_steps / max(c.free_phases, 1)},
        "mvm_count": c.mvm,
        "pulse_count": trainer.engine.pulses,
        "max_device_pulses": trainer.engine.max_device_pulses,
        "programming": trainer.engine.programming(),
    }


def dataset_for(scenario: Scenario):
    """The scenario's data, with ``data.train_limit`` applied."""
    d = scenario.data
    dataset = load_dataset(d.name, data_dir=d.dir, test_fraction=d.test_fraction, seed=scenario.seed)
    if d.train_limit:
        dataset = replace(dataset, x_train=dataset.x_train[: d.train_limit], y_train=dataset.y_train[: d.train_limit])
    return dataset


def run_scenario(scenario: Scenario, out: str | Path, progress: bool = True, echo=print) -> dict:
    """Train the scenario's crossbar network (and its ideal twin when ``compare_ideal``); write ``out``.

    Returns:
        The metrics written to ``metrics.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report.write_config(out, scenario.to_dict())
    dataset = dataset_for(scenario)
    model = scenario.hardware.device.build()
    runs, metrics = {}, {"name": scenario.name, "seed": scenario.seed, "device": model.name}
    plan = [("crossbar", model)]
    if scenario.compare_ideal and not model.ideal:
        plan.append(("ideal", get_model("ideal")()))
    for name, m in plan:
        start = time.perf_counter()
        trainer = Trainer(scenario, dataset, m, label=name, progress=progress)
        trainer.fit(on_epoch=lambda row, n=name: echo(
            f"{n:8s} epoch {row['epoch']:3d}  train {row['train_accuracy']:.4f}  test {row['test_accuracy']:.4f}"))
        runs[name] = trainer.counters.history
        summary = _summary(trainer, time.perf_counter() - start)
        delay = scenario.hardware.time.eval_delay
        if delay > 0:
            # Inference after the devices have drifted for a while without pulses.
            trainer.engine.advance(trainer.engine.now + delay)
            with blas.limit_threads(1):
                summary["test_accuracy_after_delay"] = trainer.evaluate(dataset.x_test, dataset.y_test)
            echo(f"{name:8s} test accuracy {delay:g} s after training: {summary['test_accuracy_after_delay']:.4f}")
        if name == "crossbar":
            metrics.update(summary)
            metrics["history"] = runs[name]
        else:
            metrics["ideal"] = {**summary, "history": runs[name]}
    report.write_metrics(out, metrics)
    report.write_history(out, runs)
    report.plot_accuracy(out, runs, f"{scenario.name}: {model.name}")
    return metrics
