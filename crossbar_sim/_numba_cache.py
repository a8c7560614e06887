"""Guard against stale Numba caches.

Numba revalidates a cached kernel only against the source file of the kernel itself. Our kernels also freeze
module-level constants of other modules (the row numbers of device parameters, the periphery and write-back
vector layouts) into their machine code, so editing those modules must drop every cached kernel. This checks
a hash of those modules against a stamp next to the caches and deletes the caches when it differs.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_SOURCES = ("device_models/base.py", "crossbar_sim/kernels.py", "crossbar_sim/writeback.py", "crossbar_sim/rng.py",
            "crossbar_sim/blas.py")
_PACKAGES = ("crossbar_sim", "device_models")


def check() -> None:
    try:
        digest = hashlib.sha256(b"".join((_ROOT / s).read_bytes() for s in _SOURCES)).hexdigest()
        stamp = _ROOT / "crossbar_sim" / "__pycache__" / "numba-constants.stamp"
        if stamp.exists() and stamp.read_text() == digest:
            return
        for package in _PACKAGES:
            for cached in (_ROOT / package / "__pycache__").glob("*.nb[ic]"):
                cached.unlink(missing_ok=True)
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: Numba then cannot cache either
        pass
