"""Guard against stale Numba caches.

Numba revalidates a cached kernel only against the source file of the kernel itself. Our kernels also compile
in the functions they call from other modules (the convolution reads inside the settle loop) and freeze
module-level constants of other modules (the row numbers of device parameters, the periphery and write-back
vector layouts) into their machine code, so editing any of those modules must drop every cached kernel (an
edit of ``conv.py`` alone once left the settle loop running the old convolution). This checks a hash of every
module of the packages below against a stamp next to the caches and deletes the caches when it differs.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("crossbar_sim", "device_models", "networks")


def check() -> None:
    try:
        sources = sorted(p for package in _PACKAGES for p in (_ROOT / package).glob("*.py"))
        digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sources)).hexdigest()
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
