"""Run checkpoints: the whole state of a run after an epoch, or after a batch inside one, written atomically.

``checkpoint.pkl`` in the run directory holds the resolved scenario, the finished parts of the run (the
crossbar run, then its ideal twin) and the trainer state of the part in progress: conductances, device
parameters, pulse counts, the clock, every generator's state, counters, particles, history and, inside an
epoch, its sample order, next batch and the epoch's sums so far. A run killed at any point continues from it
with ``crossbar-sim run --resume DIR`` and ends with the numbers an uninterrupted run gives. The file is a
Python pickle: load only checkpoints you wrote.
"""
from __future__ import annotations

import pickle
from pathlib import Path

from crossbar_sim.report import write_atomic

FILE = "checkpoint.pkl"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (names the file)."""


def save(out: Path, payload: dict) -> None:
    """Write ``payload`` as ``out/checkpoint.pkl`` through a temporary file and a rename."""
    write_atomic(Path(out) / FILE, pickle.dumps({"version": VERSION, **payload}, protocol=pickle.HIGHEST_PROTOCOL))


def load(out: Path) -> dict | None:
    """The checkpoint in ``out``, or None when there is none yet."""
    path = Path(out) / FILE
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            payload = pickle.load(fh)
    except Exception as exc:  # a truncated or foreign file: never half-resume
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version') if isinstance(payload, dict) else '?'}"
                              f" is not {VERSION}; rerun from the start")
    return payload
