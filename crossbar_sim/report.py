"""Run outputs: resolved config, metrics, history table and the accuracy plot. Files are written atomically."""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
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


def metric_of(record: dict) -> str:
    """Which score a metrics dict or history row carries: ``accuracy`` (classification; higher is better) or
    ``loss`` (regression: mean half squared error; lower is better). Keys are ``test_<metric>``, ``train_<metric>``."""
    return "accuracy" if "test_accuracy" in record else "loss"


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
    """Test (solid) and train (dashed) accuracy (regression: loss) against epoch for each run, as ``accuracy.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    colours = {"crossbar": "tab:red", "ideal": "tab:blue"}
    metric = "accuracy"
    for name, history in runs.items():
        metric = metric_of(history[0])
        epochs = [r["epoch"] for r in history]
        c = colours.get(name)
        ax.plot(epochs, [r[f"test_{metric}"] for r in history], "-o", color=c, ms=3, label=f"{name} test")
        ax.plot(epochs, [r[f"train_{metric}"] for r in history], "--", color=c, alpha=0.6, label=f"{name} train")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy" if metric == "accuracy" else "loss (mean half squared error)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_png(fig, out / "accuracy.png")
    plt.close(fig)


def save_png(fig, path: Path) -> None:
    """Save a figure atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)


def plot_learning(out: Path, diagnostics: dict[str, dict]) -> None:
    """``learning.png``: per-layer RMS weight correction per epoch (log scale) with the log-spread, and, for
    crossbar runs, the share of each layer's intended update lost to rounding, bounds and absent devices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lost = {name: d for name, d in diagnostics.items() if any("lost_fraction" in e for e in d["epochs"])}
    fig, axes = plt.subplots(1, 2 if lost else 1, figsize=(11 if lost else 6, 4), dpi=110, squeeze=False)
    ax = axes[0, 0]
    styles = {"crossbar": "-", "ideal": "--"}
    for name, d in diagnostics.items():
        epochs = range(1, len(d["epochs"]) + 1)
        rms = np.array([e["rms"] for e in d["epochs"]])
        for i, layer in enumerate(d["layers"]):
            ax.plot(epochs, rms[:, i], styles.get(name, "-"), color=f"C{i % 10}",
                    label=f"{layer}" if name == next(iter(diagnostics)) else None)
        spread = d["epochs"][-1]["log_spread"]
        ax.plot([], [], styles.get(name, "-"), color="k", label=f"{name}: log-spread {spread:.2f}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMS weight correction per connection")
    ax.set_title("learning speed per layer (without the learning rate)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if lost:
        ax = axes[0, 1]
        low = 0.0  # a negative share (the devices overshoot) stays in view
        for name, d in lost.items():
            frac = np.array([e.get("lost_fraction", [np.nan] * len(d["layers"])) for e in d["epochs"]])
            for i, layer in enumerate(d["layers"]):
                ax.plot(range(1, len(frac) + 1), frac[:, i], "-o", ms=3, color=f"C{i % 10}", label=layer)
            skip = np.array([e.get("lost_fraction_skip", np.nan) for e in d["epochs"]])
            if not np.isnan(skip).all():
                ax.plot(range(1, len(skip) + 1), skip, "--", color="k", label="layer-skipping blocks")
            low = min(low, np.nanmin(np.append(frac.ravel(), skip)))
        ax.set_ylim(low - 0.02, 1.02)
        ax.set_xlabel("epoch")
        ax.set_ylabel("share of the intended update lost")
        ax.set_title("crossbar: lost to rounding, bounds, absent or stuck devices", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, out / "learning.png")
    plt.close(fig)


def plot_corrections(out: Path, sizes, edges, mean_abs: list[np.ndarray], title: str) -> None:
    """``corrections.png``: the mean absolute weight correction of every connection as one neuron-by-neuron
    image, blocks placed by layer (Gammell et al. 2021, Figure 5); white where there is no connection.
    Not drawn for networks with convolutional blocks (a shared kernel has no neuron-by-neuron matrix)."""
    if any(e.conv is not None for e in edges):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    start = np.concatenate([[0], np.cumsum(sizes)])
    image = np.full((start[-1], start[-1]), np.nan)
    for e, a in zip(edges, mean_abs):
        block = a[: sizes[e.src]].astype(float)
        if e.mask is not None:
            block = np.where(e.mask, block, np.nan)
        image[start[e.src]: start[e.src + 1], start[e.dst]: start[e.dst + 1]] = block
    positive = image[np.isfinite(image) & (image > 0)]
    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=120)
    if positive.size:
        im = ax.imshow(np.where(image > 0, image, np.nan), cmap="viridis", interpolation="nearest",
                       norm=LogNorm(vmin=np.percentile(positive, 1), vmax=positive.max()))
        fig.colorbar(im, ax=ax, label="mean |weight correction| per batch")
    for s in start[1:-1]:
        ax.axhline(s - 0.5, color="0.6", lw=0.4)
        ax.axvline(s - 0.5, color="0.6", lw=0.4)
    ax.set_xlabel("post-synaptic neuron (layers in order)")
    ax.set_ylabel("pre-synaptic neuron")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, out / "corrections.png")
    plt.close(fig)
