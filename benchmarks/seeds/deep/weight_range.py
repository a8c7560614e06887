"""Train a scenario and print each block's weight range after every epoch, to choose ``hardware.tile.w_max``.

Each line: block shape (rows incl. bias x columns), largest |w|, its 99th and 90th percentiles, and the standard
deviation; then the run's history. On a crossbar device the weights are the conductances read back, so a
percentile at w_max shows clipping. Same Trainer as ``crossbar-sim run``, so the same seed gives the same
accuracies; nothing is written to disk.

    python benchmarks/seeds/deep/weight_range.py benchmarks/seeds/deep/fmnist_conv.yaml \\
        --set data.train_limit=6000 --set train.epochs=2
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from crossbar_sim.config import load_scenario
from crossbar_sim.run import dataset_for
from crossbar_sim.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    args = ap.parse_args()
    sc = load_scenario(args.scenario, args.overrides)
    trainer = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    t0 = time.perf_counter()

    def show(*_args, **_kwargs):
        for w in trainer.engine.weights():
            a = np.abs(w)
            print(f"{w.shape} max {a.max():.3f} p99 {np.percentile(a, 99):.3f} p90 {np.percentile(a, 90):.3f} "
                  f"std {w.std():.3f}", flush=True)

    history = trainer.fit(on_epoch=show)
    print(history, f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
