"""Sweep reports, rebuilt from the run directories every time: ``sweep.csv``, plots and ``summary.md``.

``crossbar-sim report DIR`` reads the points listed in ``DIR/sweep.json`` (or, without it, every run
directory directly under ``DIR``), so a report never holds a point twice or misses a finished one.
"""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from crossbar_sim.config import ConfigError
from crossbar_sim.report import save_png, write_atomic

FIRST_COLUMNS = ("point", "status", "repeat", "seed")
TABLE = "sweep.csv"
SUMMARY = "summary.md"


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif not isinstance(v, list):
            out[key] = v
    return out


def _points(out: Path) -> tuple[list[dict], list[str]]:
    """Point records (name, values, repeat, seed) and the swept keys, from sweep.json or the directories."""
    sweep_file = out / "sweep.json"
    if sweep_file.is_file():
        sweep = json.loads(sweep_file.read_text())
        return sweep["points"], list(sweep["grid"])
    records = []
    dirs = [out] if (out / "metrics.json").is_file() else sorted(p for p in out.iterdir() if (p / "config.yaml").is_file())
    for d in dirs:
        point = d / "point.json"
        rec = json.loads(point.read_text()) if point.is_file() else {"name": d.name, "values": {}, "repeat": 0, "seed": None}
        rec["dir"] = str(d)
        records.append(rec)
    keys = list(dict.fromkeys(k for r in records for k in r["values"]))
    return records, keys


def collect(out: str | Path) -> tuple[list[dict], list[str], dict[str, list[dict]]]:
    """One row per point (status, swept values, every scalar metric), the swept keys, and each finished
    point's crossbar history (name -> rows)."""
    out = Path(out)
    if not out.is_dir():
        raise ConfigError(f"{out}: no such directory")
    records, keys = _points(out)
    if not records:
        raise ConfigError(f"{out}: no sweep.json and no run directories here; give the --out of a sweep or run")
    rows, histories = [], {}
    for rec in records:
        d = Path(rec.get("dir") or out / rec["name"])
        row = {"point": rec["name"], "repeat": rec["repeat"], "seed": rec["seed"], **rec["values"]}
        metrics_file, error_file = d / "metrics.json", d / "error.txt"
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text())
            row["status"] = "done"
            row.update({k: v for k, v in _flatten(metrics).items() if k not in row})
            histories[rec["name"]] = metrics["history"]
        elif error_file.is_file():
            row["status"] = "failed"
            row["error"] = error_file.read_text().strip().splitlines()[-1][:300]
        else:
            row["status"] = "running or not started" if (d / "config.yaml").is_file() else "not started"
        rows.append(row)
    return rows, keys, histories


def _csv(rows: list[dict], keys: list[str]) -> str:
    columns = list(dict.fromkeys([*FIRST_COLUMNS, *keys, *(k for r in rows for k in r)]))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()})
    return buf.getvalue()


def write_table(out: str | Path) -> Path:
    """Rebuild ``sweep.csv`` from the point directories."""
    rows, keys, _ = collect(out)
    path = Path(out) / TABLE
    write_atomic(path, _csv(rows, keys))
    return path


# ---- grouping ----------------------------------------------------------------------------------------

def _key_of(row: dict, keys: list[str]) -> tuple:
    return tuple(json.dumps(row.get(k)) for k in keys)


def _x_key(keys: list[str], rows: list[dict]) -> str | None:
    """The swept key for the x axis: the bit depth when swept, else the first numeric key with two values."""
    if "hardware.device.bits" in keys:
        return "hardware.device.bits"
    for k in keys:
        values = {json.dumps(r.get(k)) for r in rows}
        if len(values) > 1 and all(isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) for r in rows):
            return k
    return keys[0] if keys else None


def _metric(rows: list[dict]) -> str:
    """``loss`` when the finished points scored a regression (``test_loss``), else ``accuracy``."""
    return "loss" if any("test_loss" in r for r in rows) and not any("test_accuracy" in r for r in rows) else "accuracy"


def _stats(rows: list[dict], metric: str) -> tuple[float, float, int]:
    vals = np.array([r[metric] for r in rows if r.get("status") == "done" and r.get(metric) is not None], dtype=float)
    if vals.size == 0:
        return float("nan"), float("nan"), 0
    return float(vals.mean()), float(vals.std(ddof=1)) if vals.size > 1 else 0.0, int(vals.size)


def groups(rows: list[dict], keys: list[str]) -> dict[tuple, list[dict]]:
    """Rows grouped by their swept values (the repeats of one setting together), in sweep order."""
    out = defaultdict(list)
    for r in rows:
        out[_key_of(r, keys)].append(r)
    return dict(out)


def _fmt(v) -> str:
    return "-".join(map(str, v)) if isinstance(v, list) else str(v)


# ---- plots -----------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy_vs_param(out: Path, rows, keys) -> Path | None:
    """Test accuracy against the x key, one line per setting of the other keys, error bars over repeats;
    the ideal twin dotted in the same colour when it was run."""
    x = _x_key(keys, rows)
    if x is None:
        return None
    plt = _plt()
    others = [k for k in keys if k != x]
    series = groups(rows, others)
    xs_all = list(dict.fromkeys(json.dumps(r.get(x)) for r in rows))
    numeric = all(isinstance(json.loads(v), (int, float)) for v in xs_all)
    m = _metric(rows)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for i, (skey, srows) in enumerate(series.items()):
        label = ", ".join(f"{k.split('.')[-1]}={_fmt(json.loads(v))}" for k, v in zip(others, skey)) or "crossbar"
        pts = groups(srows, [x])
        xv = [json.loads(k[0]) for k in pts]
        pos = xv if numeric else [xs_all.index(k[0]) for k in pts]
        acc = [_stats(v, f"test_{m}") for v in pts.values()]
        colour = f"C{i % 10}"
        ax.errorbar(pos, [a[0] for a in acc], yerr=[a[1] for a in acc], fmt="-o", ms=4, capsize=3, color=colour,
                    label=label)
        ideal = [_stats(v, f"ideal.test_{m}")[0] for v in pts.values()]
        if not all(np.isnan(ideal)):
            ax.plot(pos, ideal, ":", color=colour, alpha=0.7)
    if not numeric:
        ax.set_xticks(range(len(xs_all)), [_fmt(json.loads(v)) for v in xs_all])
    ax.set_xlabel(x)
    ax.set_ylabel(f"test {m} (mean ± std over repeats)")
    ax.set_title(f"{m} against " + x.split(".")[-1] + (" (dotted: ideal twin)" if any(
        f"ideal.test_{m}" in r for r in rows) else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = out / f"accuracy_vs_{x.split('.')[-1]}.png"
    save_png(fig, path)
    plt.close(fig)
    return path


def plot_accuracy_vs_epoch(out: Path, rows, keys, histories) -> Path | None:
    """Test accuracy per epoch of every setting (mean over repeats), one panel per setting of the keys other
    than the x key."""
    if not histories:
        return None
    plt = _plt()
    x = _x_key(keys, rows)
    others = [k for k in keys if k != x]
    m = _metric(rows)
    panels = list(groups(rows, others).items())[:16]
    n = len(panels)
    cols = min(n, 4)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(3.6 * cols, 2.8 * ((n + cols - 1) // cols)),
                             dpi=110, squeeze=False, sharey=True)
    for ax, (pkey, prows) in zip(axes.flat, panels):
        lines = groups(prows, [x] if x else [])
        for i, (lkey, lrows) in enumerate(lines.items()):
            hs = [histories[r["point"]] for r in lrows if r["point"] in histories]
            if not hs:
                continue
            n_ep = min(len(h) for h in hs)
            acc = np.mean([[row[f"test_{m}"] for row in h[:n_ep]] for h in hs], axis=0)
            label = f"{x.split('.')[-1]}={_fmt(json.loads(lkey[0]))}" if x else None
            ax.plot(range(1, n_ep + 1), acc, color=plt.cm.viridis(i / max(len(lines) - 1, 1)), label=label)
        ax.set_title(", ".join(f"{k.split('.')[-1]}={_fmt(json.loads(v))}" for k, v in zip(others, pkey)) or "all",
                     fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.axis("off")
    axes[0, 0].set_ylabel(f"test {m}")
    if x:
        axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "accuracy_vs_epoch.png"
    save_png(fig, path)
    plt.close(fig)
    return path


def plot_costs(out: Path, rows, keys) -> Path | None:
    """Pulses per setting, and the energy estimate when the scenario gave per-operation energies."""
    settings = [(k, v) for k, v in groups(rows, keys).items() if _stats(v, "pulse_count")[2]]
    if not settings:
        return None
    plt = _plt()
    metrics = [("pulse_count", "programming pulses of training")]
    if any("energy.train_j.total" in r for r in rows):
        metrics.append(("energy.train_j.total", "training energy estimate (J)"))
    labels = [", ".join(f"{k.split('.')[-1]}={_fmt(json.loads(v))}" for k, v in zip(keys, key)) for key, _ in settings]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 0.28 * len(settings) + 1.5), dpi=110,
                             squeeze=False)
    for ax, (metric, title) in zip(axes[0], metrics):
        vals = [_stats(v, metric) for _, v in settings]
        ax.barh(range(len(settings)), [m for m, _, _ in vals], xerr=[s for _, s, _ in vals], color="tab:purple")
        ax.set_yticks(range(len(settings)), labels if ax is axes[0, 0] else [""] * len(settings), fontsize=7)
        means = [m for m, _, _ in vals if m > 0]
        if means and max(means) / min(means) > 100:
            ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    path = out / "costs.png"
    save_png(fig, path)
    plt.close(fig)
    return path


# ---- summary ---------------------------------------------------------------------------------------

def summary_markdown(rows, keys) -> str:
    """A Markdown table: one line per setting, means ± std over its finished repeats."""
    m = _metric(rows)
    has_ideal = any(f"ideal.test_{m}" in r for r in rows)
    has_energy = any("energy.train_j.total" in r for r in rows)
    head = [k.split(".")[-1] for k in keys] + ["runs", f"test {m}"]
    head += ["ideal twin"] if has_ideal else []
    head += [f"train {m}", "pulses", "max pulses / device"]
    head += ["energy (J)"] if has_energy else []
    head += ["wall s / run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pm(rs, metric, fmt):
        m, s, n = _stats(rs, metric)
        if n == 0:
            return "-"
        return (fmt.format(m) + (" ± " + fmt.format(s) if n > 1 else "")) if not np.isnan(m) else "-"

    for key, rs in groups(rows, keys).items():
        done = sum(r["status"] == "done" for r in rs)
        cells = [_fmt(json.loads(v)) for v in key] + [f"{done}/{len(rs)}", pm(rs, f"test_{m}", "{:.4f}")]
        cells += [pm(rs, f"ideal.test_{m}", "{:.4f}")] if has_ideal else []
        cells += [pm(rs, f"train_{m}", "{:.4f}"), pm(rs, "pulse_count", "{:.3g}"),
                  pm(rs, "max_device_pulses", "{:.3g}")]
        cells += [pm(rs, "energy.train_j.total", "{:.3g}")] if has_energy else []
        cells += [pm(rs, "wall_seconds", "{:.1f}")]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r["status"] == "failed"]
    unfinished = [r for r in rows if r["status"] not in ("done", "failed")]
    text = "\n".join(lines) + "\n"
    if failed:
        text += "\nFailed points:\n\n" + "".join(f"- `{r['point']}`: {r.get('error', '')}\n" for r in failed)
    if unfinished:
        text += f"\n{len(unfinished)} point(s) not finished: rerun the same sweep to complete them.\n"
    return text


def write_report(out: str | Path) -> dict[str, Path]:
    """``sweep.csv``, ``summary.md`` and the plots, all rebuilt from the run directories."""
    out = Path(out)
    rows, keys, histories = collect(out)
    written = {"table": out / TABLE, "summary": out / SUMMARY}
    write_atomic(written["table"], _csv(rows, keys))
    write_atomic(written["summary"], summary_markdown(rows, keys))
    for name, path in (("accuracy", plot_accuracy_vs_param(out, rows, keys)),
                       ("epochs", plot_accuracy_vs_epoch(out, rows, keys, histories)),
                       ("costs", plot_costs(out, rows, keys))):
        if path is not None:
            written[name] = path
    return written
