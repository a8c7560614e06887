"""A running EP run's test accuracy between its epochs: each time the run writes a new checkpoint, its weights are
scored on the first ``--limit`` test images by the engine's own evaluation (the free phase as the run scores its
epochs), and a row goes to a CSV file: where training stood (epoch, batch), the running training accuracy of
that epoch so far, the test accuracy, the mean free steps.

How much does a run's test accuracy move from one checkpoint to the next? The epoch-end scores in
``history.csv`` are single snapshots of weights that keep moving; this measures how far apart snapshots a few
hundred batches apart stand. It only reads the run directory (the checkpoint is written through a rename, so
a read never sees half a file).

    NUMBA_NUM_THREADS=1 python benchmarks/seeds/deep/watch_run.py benchmarks/results/deep/RUN --limit 2000 \\
        --until-epoch 5 --out benchmarks/results/deep/probes_s35/watch_RUN.csv
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from crossbar_sim import checkpoint
from crossbar_sim.run import load_run

FIELDS = ("clock", "trained_to", "epoch", "batch", "running_train_accuracy", "test_images", "test_accuracy",
          "mean_free_steps", "eval_seconds")


def score(run: Path, limit: int | None) -> dict:
    """One row: the run's weights as its checkpoint holds them now, scored on the first ``limit`` test images."""
    saved = checkpoint.load(run)
    if saved is None:
        raise checkpoint.CheckpointError(f"{run}: no {checkpoint.FILE} yet")
    part = saved["current"] or next(iter(saved["done"]))
    trainer = load_run(run, part)  # reads the checkpoint again: where training stood comes from this read alone
    batch = trainer.batches_done() or 0
    epoch = len(trainer.counters.history) + (1 if batch else 0)
    running = trainer.running_train_score()
    x, y = trainer.data.x_test[:limit], trainer.data.y_test[:limit]
    t0 = time.perf_counter()
    acc = trainer.evaluate(x, y)
    return {"clock": time.strftime("%Y-%m-%d %H:%M:%S"), "trained_to": trainer.trained_to(), "epoch": epoch,
            "batch": batch, "running_train_accuracy": "" if running is None else f"{running:.6f}",
            "test_images": len(x), "test_accuracy": f"{acc:.6f}", "mean_free_steps": f"{trainer.eval_mean_steps:.2f}",
            "eval_seconds": f"{time.perf_counter() - t0:.1f}"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run directory that a run is writing checkpoints to")
    ap.add_argument("--out", type=Path, required=True, help="CSV file; rows are appended")
    ap.add_argument("--limit", type=int, default=2000, help="the first test images only (default 2000)")
    ap.add_argument("--until-epoch", type=int, default=None,
                    help="stop after scoring a checkpoint at or past the end of this epoch")
    ap.add_argument("--once", action="store_true", help="score the checkpoint there now and stop")
    ap.add_argument("--poll", type=float, default=10.0, help="seconds between looks at the checkpoint")
    args = ap.parse_args(argv)
    path = args.run / checkpoint.FILE
    if not (args.run / "config.yaml").is_file():
        ap.error(f"{args.run}: not a run directory (no config.yaml)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    seen = None
    while True:
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if stamp is not None and stamp != seen:
            seen = stamp
            row = score(args.run, args.limit)
            new = not args.out.exists() or args.out.stat().st_size == 0
            with open(args.out, "a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=FIELDS)
                if new:
                    w.writeheader()
                w.writerow(row)
            print(", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
            finished = row["batch"] == 0 and args.until_epoch is not None and row["epoch"] >= args.until_epoch
            if args.once or finished:
                return 0
        elif args.once:
            print(f"{path}: no checkpoint", file=sys.stderr)
            return 1
        time.sleep(args.poll)


if __name__ == "__main__":
    raise SystemExit(main())
