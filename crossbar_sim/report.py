"""Run outputs: resolved config, metrics, history table and the accuracy plot. Files are written atomically."""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import yaml


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's own files are private (0600)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so a reader never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_config(out: Path, config: dict) -> None:
    write_atomic(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))


def write_metrics(out: Path, metrics: dict) -> None:
    write_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def write_history(out: Path, runs: dict[str, list[dict]]) -> None:
    """One row per (run, epoch): ``run`` is ``crossbar`` or ``ideal``."""
    rows = [{"run": name, **row} for name, history in runs.items() for row in history]
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_atomic(out / "history.csv", buf.getvalue())


def plot_accuracy(out: Path, runs: dict[str, list[dict]], title: str) -> None:
    """Test (solid) and train (dashed) accuracy against epoch for each run, as ``accuracy.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    colours = {"crossbar": "tab:red", "ideal": "tab:blue"}
    for name, history in runs.items():
        epochs = [r["epoch"] for r in history]
        c = colours.get(name)
        ax.plot(epochs, [r["test_accuracy"] for r in history], "-o", color=c, ms=3, label=f"{name} test")
        ax.plot(epochs, [r["train_accuracy"] for r in history], "--", color=c, alpha=0.6, label=f"{name} train")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out / ".accuracy.tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out / "accuracy.png")
