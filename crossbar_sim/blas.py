"""float32 GEMM for the Numba kernels, from the same BLAS that NumPy uses.

Numba's own ``np.dot`` goes through SciPy's copy of OpenBLAS. Using it next to NumPy's (which the trainer's
array code uses) leaves two OpenBLAS thread pools spinning against each other on two cores, and ``np.dot``
cannot accumulate (``beta = 1``) or read a column block of a matrix in place. So the kernels call NumPy's
bundled OpenBLAS ``cblas_sgemm`` directly, declared as an external symbol so the kernels stay cacheable.
Where NumPy has no bundled OpenBLAS (a source or MKL build), :data:`BACKEND` is ``"numba-dot"`` and a slower
fallback through ``np.dot`` is used.
"""
from __future__ import annotations

import glob
import os

import numpy as np
from numba import njit, types

_ROW_MAJOR, _NO_TRANS = 101, 111


def _find_numpy_openblas():
    import llvmlite.binding as llb

    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libdir, "lib*openblas*.so*"))):
        try:
            llb.load_library_permanently(path)
        except RuntimeError:
            continue
        for symbol in ("scipy_cblas_sgemm64_", "cblas_sgemm64_"):
            if llb.address_of_symbol(symbol):
                return symbol
    return None


_SYMBOL = None if os.environ.get("CROSSBAR_SIM_BLAS") == "numba" else _find_numpy_openblas()
BACKEND = f"numpy-openblas ({_SYMBOL})" if _SYMBOL else "numba-dot"

if _SYMBOL:
    _i64, _f32 = types.int64, types.float32
    _sgemm = types.ExternalFunction(_SYMBOL, types.void(
        types.intc, types.intc, types.intc, _i64, _i64, _i64, _f32, _i64, _i64, _i64, _i64, _f32, _i64, _i64))

    @njit(cache=True)
    def gemm_rows(a, c0, c1, W, r0, out, beta):
        """``out = beta * out + a[:, c0:c1] @ W[r0:r0 + (c1 - c0)]`` for C-contiguous float32 arrays."""
        M = a.shape[0]
        K = c1 - c0
        N = W.shape[1]
        _sgemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, M, N, K, np.float32(1.0), a.ctypes.data + 4 * c0, a.shape[1],
               W.ctypes.data + 4 * r0 * N, N, np.float32(beta), out.ctypes.data, out.shape[1])
else:
    @njit(cache=True)
    def gemm_rows(a, c0, c1, W, r0, out, beta):
        """``out = beta * out + a[:, c0:c1] @ W[r0:r0 + (c1 - c0)]`` (fallback through ``np.dot``)."""
        prod = np.dot(np.ascontiguousarray(a[:, c0:c1]), np.ascontiguousarray(W[r0: r0 + c1 - c0]))
        if beta == 0.0:
            out[:, :] = prod
        else:
            out += prod


def _thread_controls():
    import ctypes

    if not _SYMBOL:
        return None, None
    libdir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libdir, "lib*openblas*.so*"))):
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            setter = getattr(lib, f"{prefix}_set_num_threads64_", None)
            getter = getattr(lib, f"{prefix}_get_num_threads64_", None)
            if setter is not None and getter is not None:
                setter.argtypes = [ctypes.c_int]
                return setter, getter
    return None, None


_SET_THREADS, _GET_THREADS = _thread_controls()


class limit_threads:
    """Context manager: NumPy's OpenBLAS runs ``n`` threads inside (the settle kernel parallelises over the
    batch itself and calls BLAS from each of its threads). No-op when the threads cannot be controlled."""

    def __init__(self, n: int = 1):
        self.n = n
        self.saved = None

    def __enter__(self):
        if _GET_THREADS is not None:
            self.saved = _GET_THREADS()
            if self.saved != self.n:
                _SET_THREADS(self.n)
        return self

    def __exit__(self, *exc):
        if self.saved is not None and self.saved != self.n:
            _SET_THREADS(self.saved)
        return False
