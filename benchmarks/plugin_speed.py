"""A plugin device against built-ins of the same complexity, on the settle + write-back step.

The example plugin (examples/plugin_device, ``tanh_step``: one tanh per pulse) is installed into a temporary
directory if it is not importable, and compared with ``exp_step`` (one exp per pulse) and ``soft_bounds``
(arithmetic only). Timed: the write-back of an MNIST-sized 785x500 matrix, and whole EP batches (settle +
write-back) of the quickstart network, each the fastest of several rounds taken in turn.
Usage: python benchmarks/plugin_speed.py
"""
from __future__ import annotations

import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def plugin_class():
    try:
        return importlib.import_module("tanh_device").TanhStep
    except ImportError:
        target = tempfile.mkdtemp(prefix="plugin_")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target,
                        str(ROOT / "examples" / "plugin_device")], check=True)
        sys.path.insert(0, target)
        return importlib.import_module("tanh_device").TanhStep


def main():
    from benchmarks.throughput import fastest
    from crossbar_sim import blas
    from crossbar_sim.config import load_scenario
    from crossbar_sim.run import dataset_for
    from crossbar_sim.tiles import CrossbarArray, Periphery
    from crossbar_sim.trainer import Trainer
    from device_models import get_model

    models = {"tanh_step (plugin)": plugin_class()(bits=8, write_noise=0.1),
              "exp_step": get_model("exp_step")(bits=8, write_noise=0.1),
              "soft_bounds": get_model("soft_bounds")(bits=8, write_noise=0.1)}
    rng = np.random.default_rng(0)
    W0 = rng.uniform(-0.05, 0.05, (785, 500))
    dW = rng.normal(0, 0.01, (785, 500))
    sc = load_scenario(ROOT / "scenarios" / "quickstart.yaml", ["data.train_limit=256"])
    data = dataset_for(sc)
    x, y = data.x_train[:32], data.targets(data.y_train[:32])
    calls = {}
    for name, model in models.items():
        arr = CrossbarArray(W0, model, Periphery(w_max=0.5), np.random.default_rng(1), np.zeros((785, 500), np.float32),
                            np.zeros((500, 784), np.float32))
        calls[f"write-back 785x500, {name}"] = (lambda a=arr: a.apply(dW, np.random.default_rng(2)))
        tr = Trainer(sc, data, model, progress=False)

        def batch(tr=tr):
            est, res = tr.step.estimate(x, y, np.zeros(32 * tr.engine.state_size(), np.float32), tr.rng["ep"])
            tr._write(x, est, res)

        calls[f"EP batch 64-100-10 (settle + write-back), {name}"] = batch
    with blas.limit_threads(1):
        best = fastest(calls, 20.0)
    for kind in ("write-back 785x500", "EP batch 64-100-10 (settle + write-back)"):
        ref = best[f"{kind}, exp_step"]
        for name in models:
            t = best[f"{kind}, {name}"]
            print(f"{kind}, {name:20s}: {1e3 * t:7.3f} ms  ({100 * t / ref:5.1f}% of exp_step)")


if __name__ == "__main__":
    main()
