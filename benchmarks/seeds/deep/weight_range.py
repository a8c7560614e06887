"""Train a scenario and print each block's weight range after every epoch, to choose ``hardware.tile.w_max``.

Each line: block shape (rows incl. bias x columns), largest |w|, its 99th and 90th percentiles, and the standard
deviation; then the run's history. On a crossbar device the weights are the conductances read back, so a
percentile at w_max shows clipping. Same Trainer as ``crossbar-sim run``, so the same seed gives the same
accuracies; nothing is written to disk.

    python benchmarks/seeds/deep/weight_range.py benchmarks/seeds/deep/fmnist_conv.yaml \\
        data.train_limit=6000 train.epochs=2
"""
from __future__ import annotations

import sys
import time

import numpy as np

from crossbar_sim.config import load_scenario
from crossbar_sim.run import dataset_for
from crossbar_sim.trainer import Trainer


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    sc = load_scenario(argv[0], argv[1:])
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
    main(sys.argv[1:])
