"""Train a scenario's network as its feedforward backprop twin (:mod:`crossbar_sim.bp_twin`) and write
``metrics.json``, ``history.csv`` and ``weights.npz`` (the trained blocks in edge order) to ``--out``: the "BP"
column next to EP in the seeds' tables.

    python benchmarks/seeds/deep/bp_twin.py benchmarks/seeds/deep/fmnist_conv.yaml --out benchmarks/results/deep/conv_bp
        [--set key=value ...] [--logits teacher.npy]

``--relaxed`` trains the energy model's free phase itself by backprop through time (BPTT over the scenario's
``ep.free_steps`` coordinate steps, feedback included) instead of the feedforward net.

``--flush-subnormals`` treats subnormal floats as zero while training (``train_bp(flush_subnormals=True)``).

``--watch N`` scores the twin every N batches on the first ``--watch-limit`` test images and appends a row to
``watch.csv`` in ``--out`` (epoch, batch, running training accuracy, test accuracy): the twin's side of
``watch_run.py``. Watching changes no number of the run.

``--logits FILE`` also writes the trained twin's logits of the training set (a softmax readout only), the
teacher that ``ep.distill.logits`` reads.
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
from pathlib import Path

import numpy as np

from crossbar_sim.bp_twin import train_bp
from crossbar_sim.config import load_scenario
from crossbar_sim.run import dataset_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--logits", default=None, metavar="FILE",
                    help="write the trained twin's logits of the training set here (.npy), for ep.distill.logits")
    ap.add_argument("--relaxed", action="store_true",
                    help="train the energy model's free phase (ep.free_steps coordinate steps) by backprop through "
                         "time instead of the feedforward net")
    ap.add_argument("--flush-subnormals", action="store_true",
                    help="treat subnormal floats as zero while training: tens of times faster where gradients "
                         "underflow (the ResNet without skips), but not the same numbers as without")
    ap.add_argument("--watch", type=int, default=None, metavar="N",
                    help="score the twin every N batches on the first --watch-limit test images (watch.csv)")
    ap.add_argument("--watch-limit", type=int, default=2000)
    args = ap.parse_args()
    if args.watch is not None and args.watch < 1:
        ap.error(f"--watch {args.watch}: expected a number of batches of at least 1")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    scenario = load_scenario(args.scenario, overrides=args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def on_epoch(row):
        print(f"BP twin epoch {row['epoch']:3d}  train accuracy {row['train_accuracy']:.4f}  "
              f"test accuracy {row['test_accuracy']:.4f}  ({row['seconds']:.0f} s)", flush=True)

    data = dataset_for(scenario)
    on_batch = None
    if args.watch:
        x, y = data.x_test[: args.watch_limit], np.asarray(data.y_test[: args.watch_limit])
        watch = out / "watch.csv"
        watch.write_text("epoch,batch,running_train_accuracy,test_images,test_accuracy\n")
        bs = scenario.data.batch_size

        def on_batch(epoch, batch, correct, predict):
            if batch % args.watch == 0:
                acc = float((predict(x) == y).mean())
                with open(watch, "a") as fh:
                    fh.write(f"{epoch},{batch},{correct / min(batch * bs, len(data.x_train)):.6f},{len(y)},{acc:.6f}\n")

    result = train_bp(scenario, data, on_epoch=on_epoch, train_logits=bool(args.logits),
                      relaxed=args.relaxed, flush_subnormals=args.flush_subnormals, on_batch=on_batch)
    if args.logits:
        np.save(args.logits, result.pop("train_logits"))
        result["logits"] = args.logits
    np.savez(out / "weights.npz", *result.pop("weights"))  # arr_0, arr_1, ...: the blocks in edge order
    result.update(scenario=args.scenario, overrides=args.overrides, threads=args.threads, relaxed=args.relaxed,
                  flush_subnormals=args.flush_subnormals, machine=platform.processor() or platform.machine())
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    with open(out / "history.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(result["history"][0]))
        w.writeheader()
        w.writerows(result["history"])


if __name__ == "__main__":
    main()
