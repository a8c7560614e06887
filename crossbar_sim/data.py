"""Datasets for the simulator: scikit-learn's digits, wine and diabetes, MNIST and Fashion-MNIST.

MNIST-style sets are read from the standard IDX ``.gz`` files, checked against
published md5 sums of the *decompressed* bytes, and cached as a ``.npz`` next to
the files. Missing files are downloaded when allowed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

import numpy as np

DATASETS = ("digits", "wine", "diabetes", "mnist", "fashion-mnist")
REGRESSION = ("diabetes",)  # the rest are classification sets
IMAGE_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28)}  # (C, H, W) of a row

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# md5 of the decompressed IDX bytes: some local copies were recompressed, so the
# md5 of the .gz wrapper is not stable while the payload is. Tests patch this.
RAW_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# yann.lecun.com is frequently down, hence the torchvision mirror for MNIST.
BASE_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
URL_ENV = {"mnist": "CROSSBAR_SIM_MNIST_URL", "fashion-mnist": "CROSSBAR_SIM_FASHION_MNIST_URL"}
DATA_ENV = "CROSSBAR_SIM_DATA"
DOWNLOAD_TIMEOUT = 30.0  # seconds per socket operation, not for the whole file
CACHE_NAME = "crossbar_sim-cache-v1.npz"
_CHUNK = 1 << 16


class DataError(Exception):
    """User-facing data problem; the message is one clear line (the CLI prints it and exits 2)."""


@dataclass(frozen=True, eq=False)  # eq=False: field-wise == on arrays is ambiguous
class Dataset:
    """A train/test split of flattened samples.

    Attributes:
        name: Canonical dataset name (one of ``DATASETS``).
        x_train: ``(N, D)`` float32 features in ``[0, 1]``.
        y_train: ``(N,)`` int64 class labels in ``[0, n_classes)``; for a regression set ``(N, n_classes)``
            float32 targets in ``[0, 1]``.
        x_test: ``(M, D)`` float32 features in ``[0, 1]``.
        y_test: ``(M,)`` int64 class labels (regression: ``(M, n_classes)`` float32 targets).
        n_classes: Number of classes, which is the number of output units; for regression, the number of
            target values.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def regression(self) -> bool:
        """Whether the targets are real values (scored by the squared error) rather than class labels."""
        return self.y_train.ndim == 2

    def targets(self, y: np.ndarray) -> np.ndarray:
        """The output layer's target rows for labels or targets ``y``: one-hot for classes, as-is for regression."""
        if self.regression:
            return np.asarray(y, dtype=np.float32)
        out = np.zeros((len(y), self.n_classes), dtype=np.float32)
        out[np.arange(len(y)), y] = 1.0
        return out

    @property
    def n_features(self) -> int:
        """Number of input features ``D``."""
        return int(self.x_train.shape[1])


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Return the root directory holding the dataset folders (not created here).

    Args:
        explicit: Directory to use; wins over everything else.

    Returns:
        ``explicit``, else ``$CROSSBAR_SIM_DATA``, else
        ``$XDG_CACHE_HOME/crossbar-sim`` (``~/.cache/crossbar-sim`` by default).
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV, "")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "crossbar-sim"


_resolve_dir = data_dir  # load_dataset's keyword argument shadows the function name


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None, test_fraction: float = 0.2,
                 seed: int = 0, download: bool = True) -> Dataset:
    """Load a dataset by name.

    Args:
        name: One of ``DATASETS`` (case and ``_``/``-`` are not significant).
        data_dir: Root directory for the IDX files; see :func:`data_dir`.
        test_fraction: Fraction held out for testing. Only used by ``digits``;
            ``mnist`` and ``fashion-mnist`` always use their standard 60k/10k split.
        seed: Seed of the stratified ``digits`` split; the same seed gives the same split.
        download: Whether missing IDX files may be downloaded.

    Returns:
        The loaded :class:`Dataset`.

    Raises:
        DataError: Unknown name, bad ``test_fraction``, missing or corrupt files,
            or a failed download.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key == "digits":
        return _load_digits(test_fraction, seed)
    if key == "wine":
        return _load_wine(test_fraction, seed)
    if key == "diabetes":
        return _load_diabetes(test_fraction, seed)
    if key in RAW_MD5:
        return _load_idx_set(key, _resolve_dir(data_dir) / key, download)
    raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")


def _split(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> Dataset:
    """A seeded train/test split of a bundled scikit-learn set: stratified by class, plain for regression
    targets (``y`` of shape ``(N, k)``)."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"{name}: test_fraction must be between 0 and 1, got {test_fraction}")
    regression = y.ndim == 2
    try:
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=test_fraction, stratify=None if regression else y, random_state=seed)
    except ValueError as exc:  # e.g. a test set too small to hold every class
        raise DataError(f"{name}: cannot split with test_fraction={test_fraction}: {exc}") from None
    return Dataset(name, x_tr, y_tr, x_te, y_te, int(y.shape[1]) if regression else int(len(np.unique(y))))


def _unit_range(a: np.ndarray) -> np.ndarray:
    """Each column scaled to [0, 1] by its range over the whole set (inputs and outputs are states in [0, 1])."""
    return ((a - a.min(0)) / (a.max(0) - a.min(0))).astype(np.float32)


def _load_digits(test_fraction: float, seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _split("digits", (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int64), test_fraction, seed)


def _load_wine(test_fraction: float, seed: int) -> Dataset:
    """UCI wine (178 samples, 13 features, 3 cultivars), each feature scaled to [0, 1] by its range over the
    whole set (the inputs are clamped states in [0, 1])."""
    from sklearn.datasets import load_wine

    bunch = load_wine()
    return _split("wine", _unit_range(bunch.data), bunch.target.astype(np.int64), test_fraction, seed)


def _load_diabetes(test_fraction: float, seed: int) -> Dataset:
    """Diabetes (442 patients, 10 features, one real target: disease progression after a year), a regression
    set. Features and target are scaled to [0, 1] by their range over the whole set, as in Gammell et al.'s
    code, so the target is reachable by a hard-sigmoid output unit."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    return _split("diabetes", _unit_range(bunch.data), _unit_range(bunch.target[:, None]), test_fraction, seed)


def _load_idx_set(name: str, folder: Path, download: bool) -> Dataset:
    missing = [f for f in IDX_FILES if not (folder / f).is_file()]
    if missing:
        if not download:
            raise DataError(
                f"{name}: files missing in {folder} ({', '.join(missing)}) and downloading is "
                f"disabled; put the standard IDX .gz files there or set {DATA_ENV}")
        _download(name, folder, missing)

    expected = RAW_MD5[name]
    # Size and mtime tie the cache to these exact files, so replacing one re-verifies.
    stats = [(folder / f).stat() for f in IDX_FILES]
    stamp = np.array([[st.st_size, st.st_mtime_ns] for st in stats], dtype=np.int64)
    md5s = np.array([expected[f] for f in IDX_FILES])
    arrays = _read_cache(folder / CACHE_NAME, stamp, md5s)
    if arrays is None:
        arrays = {}
        for key, fname, ndim in (("x_train", IDX_FILES[0], 3), ("y_train", IDX_FILES[1], 1),
                                 ("x_test", IDX_FILES[2], 3), ("y_test", IDX_FILES[3], 1)):
            arrays[key] = _read_idx(folder / fname, expected[fname], ndim)
        for split in ("train", "test"):
            if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]):
                raise DataError(f"{name}: {split} images and labels in {folder} differ in count")
            if arrays[f"y_{split}"].size and arrays[f"y_{split}"].max() >= 10:
                raise DataError(f"{name}: {split} labels in {folder} are outside 0..9")
        _write_cache(folder / CACHE_NAME, arrays, stamp, md5s)

    def feats(a: np.ndarray) -> np.ndarray:
        # Casting inside the ufunc: ``a.astype(f32) / 255`` measured ~20x slower on MNIST.
        return np.divide(a.reshape(len(a), -1), np.float32(255), dtype=np.float32)

    y_train, y_test = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
    return Dataset(name, feats(arrays["x_train"]), y_train, feats(arrays["x_test"]), y_test, 10)


def _read_idx(path: Path, md5: str, ndim: int) -> np.ndarray:
    """Decompress, checksum and parse one unsigned-byte IDX file."""
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from None
    got = hashlib.md5(raw).hexdigest()
    if got != md5:
        raise DataError(f"{path}: checksum mismatch (md5 of decompressed data {got}, expected {md5}); "
                        "delete or replace the file")
    # IDX header: two zero bytes, a type code (0x08 = unsigned byte), the number
    # of dimensions, then one big-endian uint32 per dimension.
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != ndim:
        raise DataError(f"{path}: malformed IDX file (bad magic number {raw[:4].hex() or 'none'}, "
                        f"expected 000008{ndim:02x})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: malformed IDX file (truncated header)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(dims)):
        raise DataError(f"{path}: malformed IDX file (dimensions {dims} need {int(np.prod(dims))} bytes, "
                        f"found {len(raw) - header})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_cache(path: Path, stamp: np.ndarray, md5s: np.ndarray) -> dict[str, np.ndarray] | None:
    """Return cached arrays if they were built from exactly these files, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if not (np.array_equal(z["stamp"], stamp) and np.array_equal(z["md5s"], md5s)):
                return None
            return {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except Exception:  # any unreadable cache is just rebuilt from the IDX files
        return None


def _write_cache(path: Path, arrays: dict[str, np.ndarray], stamp: np.ndarray, md5s: np.ndarray) -> None:
    """Best-effort atomic cache write; a failure only costs speed next time."""
    # Running as root ignores permission bits, so honour a folder deliberately
    # marked read-only (e.g. a shared data mount) instead of writing into it.
    try:
        if not os.access(path.parent, os.W_OK) or not path.parent.stat().st_mode & 0o222:
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            # Uncompressed: loading must be faster than re-parsing the .gz files.
            np.savez(fh, stamp=stamp, md5s=md5s, **arrays)
        os.replace(tmp, path)
    except Exception:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _download(name: str, folder: Path, missing: list[str]) -> None:
    """Fetch ``missing`` files into ``folder``, verifying each before it appears there."""
    from tqdm import tqdm

    base = os.environ.get(URL_ENV[name], "") or BASE_URLS[name]
    base = base.rstrip("/") + "/"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{name}: cannot create {folder} to download into ({exc.strerror or exc}); "
                        f"put the standard IDX .gz files there or set {DATA_ENV}") from None
    for fname in missing:
        url = base + fname
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{fname}.", suffix=".part")
        except OSError as exc:
            raise DataError(f"{name}: cannot write into {folder} ({exc.strerror or exc}); "
                            f"put the standard IDX .gz files there or set {DATA_ENV}") from None
        try:
            try:
                with os.fdopen(fd, "wb") as out, \
                        urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=fname, file=sys.stderr,
                              disable=None, leave=False) as bar:
                        while chunk := resp.read(_CHUNK):
                            out.write(chunk)
                            bar.update(len(chunk))
            except (OSError, HTTPException, ValueError) as exc:  # URLError and timeouts are OSErrors
                still = [f for f in IDX_FILES if not (folder / f).is_file()]
                reason = " ".join(str(getattr(exc, "reason", None) or exc).split()) or type(exc).__name__
                if isinstance(exc, urllib.error.HTTPError):
                    exc.close()  # it holds the socket, and stays alive as __context__
                    reason = f"HTTP {exc.code} {reason}"
                raise DataError(
                    f"{name}: files missing in {folder} ({', '.join(still)}) and the download from "
                    f"{url} failed ({reason}); put the standard IDX .gz files there or set {DATA_ENV}"
                ) from None
            got = _gz_md5(Path(tmp))
            want = RAW_MD5[name][fname]
            if got != want:
                raise DataError(f"{name}: checksum mismatch for {fname} downloaded from {url} "
                                f"(md5 of decompressed data {got}, expected {want})")
            os.replace(tmp, folder / fname)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _gz_md5(path: Path) -> str:
    """md5 of the decompressed content, or a marker that never matches a real md5."""
    h = hashlib.md5()
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except (OSError, EOFError, zlib.error):
        return "not-a-gzip-file"
    return h.hexdigest()
