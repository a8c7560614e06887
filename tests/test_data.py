"""Tests for crossbar_sim.data.

The real MNIST / Fashion-MNIST checks run only when CROSSBAR_SIM_DATA points at
a directory holding the IDX files; everything else is self-contained and uses a
local HTTP server on 127.0.0.1 for the download path.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from crossbar_sim import data
from crossbar_sim.data import DataError, Dataset, load_dataset

IDX = data.IDX_FILES


# ---------------------------------------------------------------- helpers

def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX (magic 0x0000 08 ndim, big-endian dims)."""
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


@pytest.fixture
def tiny(monkeypatch):
    """Tiny valid MNIST-like IDX payloads, with the module's md5 table patched to match."""
    rng = np.random.default_rng(1)
    arrays = {
        IDX[0]: rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        IDX[1]: np.array([0, 1, 2, 3, 9], dtype=np.uint8),
        IDX[2]: rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        IDX[3]: np.array([4, 5, 6], dtype=np.uint8),
    }
    raw = {f: idx_bytes(a) for f, a in arrays.items()}
    monkeypatch.setitem(data.RAW_MD5, "mnist", {f: hashlib.md5(b).hexdigest() for f, b in raw.items()})
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 5.0)
    for var in ("CROSSBAR_SIM_DATA", "CROSSBAR_SIM_MNIST_URL", "CROSSBAR_SIM_FASHION_MNIST_URL"):
        monkeypatch.delenv(var, raising=False)
    return arrays, raw


def write_gz(folder: Path, raw: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for fname, payload in raw.items():
        (folder / fname).write_bytes(gzip.compress(payload))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/'srv' on 127.0.0.1; yields (folder, base_url) and always shuts down."""
    root = tmp_path / "srv"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ---------------------------------------------------------------- digits

def test_digits_shapes_range_dtype():
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset) and ds.name == "digits"
    assert ds.n_features == 64 and ds.n_classes == 10
    assert ds.x_train.shape[1] == ds.x_test.shape[1] == 64
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert ds.x_train.shape[0] == ds.y_train.shape[0] and ds.x_test.shape[0] == ds.y_test.shape[0]
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == ds.y_test.dtype == np.int64
    for x in (ds.x_train, ds.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert ds.x_train.max() == 1.0  # /16 scaling, not /255
    assert abs(len(ds.x_test) / 1797 - 0.2) < 0.01


def test_digits_seed_determines_split():
    a, b, c = (load_dataset("digits", seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_digits_split_is_stratified():
    ds = load_dataset("digits", test_fraction=0.3, seed=3)
    train = np.bincount(ds.y_train, minlength=10) / len(ds.y_train)
    test = np.bincount(ds.y_test, minlength=10) / len(ds.y_test)
    assert np.abs(train - test).max() < 0.01
    assert abs(len(ds.y_test) / 1797 - 0.3) < 0.01


def test_wine_is_scaled_to_the_unit_box_and_split_by_seed():
    ds = load_dataset("wine", test_fraction=0.25, seed=2)
    assert ds.n_features == 13 and ds.n_classes == 3 and len(ds.x_train) + len(ds.x_test) == 178
    both = np.concatenate([ds.x_train, ds.x_test])
    assert both.dtype == np.float32 and both.min() == 0.0 and both.max() == 1.0
    np.testing.assert_array_equal(both.min(0), 0.0)  # every feature spans [0, 1]
    np.testing.assert_array_equal(both.max(0), 1.0)
    again = load_dataset("wine", test_fraction=0.25, seed=2)
    np.testing.assert_array_equal(ds.x_test, again.x_test)


def test_diabetes_is_a_regression_set_in_the_unit_box():
    ds = load_dataset("diabetes", test_fraction=0.095, seed=0)
    assert ds.regression and ds.n_features == 10 and ds.n_classes == 1
    assert len(ds.x_test) == 42 and len(ds.x_train) + len(ds.x_test) == 442  # as the paper's code
    y = np.concatenate([ds.y_train, ds.y_test])
    assert y.shape == (442, 1) and y.dtype == np.float32 and y.min() == 0.0 and y.max() == 1.0
    np.testing.assert_array_equal(ds.targets(ds.y_test[:3]), ds.y_test[:3])  # targets are the values themselves
    again, other = load_dataset("diabetes", test_fraction=0.095, seed=0), load_dataset("diabetes", test_fraction=0.095, seed=1)
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    assert not np.array_equal(ds.y_test, other.y_test)


def test_classification_targets_are_one_hot():
    ds = load_dataset("wine", test_fraction=0.25, seed=2)
    t = ds.targets(np.array([2, 0]))
    np.testing.assert_array_equal(t, [[0, 0, 1], [1, 0, 0]])
    assert not ds.regression


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_digits_bad_fraction(fraction):
    with pytest.raises(DataError, match="test_fraction"):
        load_dataset("digits", test_fraction=fraction)


def test_unknown_name_lists_known():
    with pytest.raises(DataError) as err:
        load_dataset("cifar-10")
    msg = str(err.value)
    assert "cifar-10" in msg and all(n in msg for n in data.DATASETS) and "\n" not in msg


def test_name_normalisation():
    assert load_dataset(" Digits ").name == "digits"
    assert data.DATASETS == ("digits", "wine", "diabetes", "mnist", "fashion-mnist")


# ---------------------------------------------------------------- data_dir

def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("CROSSBAR_SIM_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data.data_dir() == tmp_path / "env"
    monkeypatch.delenv("CROSSBAR_SIM_DATA")
    assert data.data_dir() == tmp_path / "xdg" / "crossbar-sim"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored per the XDG spec
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.data_dir() == tmp_path / "home" / ".cache" / "crossbar-sim"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.data_dir() == tmp_path / "home" / ".cache" / "crossbar-sim"


# ---------------------------------------------------------------- real files

REAL = {
    "mnist": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    "fashion-mnist": [1000] * 10,
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files(name):
    root = os.environ.get("CROSSBAR_SIM_DATA")
    if not root or not all((Path(root) / name / f).is_file() for f in IDX):
        pytest.skip(f"CROSSBAR_SIM_DATA does not point at a directory with {name}/ IDX files")
    ds = load_dataset(name, download=False, test_fraction=0.5)  # fraction is ignored here
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.y_train.shape == (60000,) and ds.y_test.shape == (10000,)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.n_features == 784 and ds.n_classes == 10
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() == 1.0
    assert np.bincount(ds.y_test, minlength=10).tolist() == REAL[name]


# ---------------------------------------------------------------- download path

def test_download_then_load_and_cache(tiny, server, tmp_path, monkeypatch):
    arrays, raw = tiny
    srv, url = server
    write_gz(srv, raw)
    monkeypatch.setenv("CROSSBAR_SIM_MNIST_URL", url.rstrip("/"))  # missing slash is tolerated
    root = tmp_path / "data"
    ds = load_dataset("mnist", data_dir=str(root))
    folder = root / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*IDX, data.CACHE_NAME])
    assert ds.x_train.shape == (5, 784) and ds.x_test.shape == (3, 784) and ds.n_features == 784
    np.testing.assert_array_equal(ds.x_train, arrays[IDX[0]].reshape(5, -1).astype(np.float32) / 255)
    assert ds.y_train.tolist() == [0, 1, 2, 3, 9] and ds.y_test.dtype == np.int64

    # A second load must come from the cache, without re-parsing the IDX files.
    def boom(*a, **k):
        raise AssertionError("IDX re-parsed although the cache is valid")
    with monkeypatch.context() as m:
        m.setattr(data, "_read_idx", boom)
        m.setattr(data, "_download", boom)
        again = load_dataset("mnist", data_dir=root)
    np.testing.assert_array_equal(again.x_test, ds.x_test)

    # Replacing a source file invalidates the cache (its stamp changes).
    (folder / IDX[3]).write_bytes(gzip.compress(raw[IDX[3]], mtime=123))
    os.utime(folder / IDX[3], ns=(1, 1))
    calls = []
    orig = data._read_idx
    monkeypatch.setattr(data, "_read_idx", lambda *a: calls.append(Path(a[0]).name) or orig(*a))
    load_dataset("mnist", data_dir=root)
    assert sorted(calls) == sorted(IDX)


def test_local_files_checked_and_cache_failure_tolerated(tiny, tmp_path, monkeypatch):
    _, raw = tiny
    folder = tmp_path / "mnist"
    write_gz(folder, raw)
    monkeypatch.setenv("CROSSBAR_SIM_DATA", str(tmp_path))

    def no_space(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(data.np, "savez", no_space)
    ds = load_dataset("mnist", download=False)
    assert ds.y_test.tolist() == [4, 5, 6]
    assert sorted(p.name for p in folder.iterdir()) == sorted(IDX)  # no cache, no temp left over

    # A local file whose payload differs is reported, not silently used or deleted.
    (folder / IDX[1]).write_bytes(gzip.compress(b"\x00" * 20))
    with pytest.raises(DataError, match="checksum") as err:
        load_dataset("mnist", download=False)
    assert IDX[1] in str(err.value) and (folder / IDX[1]).exists()


def test_recompressed_gz_is_accepted(tiny, tmp_path):
    """Only the decompressed bytes are checked, so a re-gzipped copy still loads."""
    _, raw = tiny
    folder = tmp_path / "mnist"
    folder.mkdir()
    for fname, payload in raw.items():
        (folder / fname).write_bytes(gzip.compress(payload, compresslevel=1, mtime=42))
    assert load_dataset("mnist", data_dir=tmp_path).x_train.shape == (5, 784)


@pytest.mark.parametrize("bad", ["flipped", "not-gzip"])
def test_corrupt_download_rejected_without_leftovers(tiny, server, tmp_path, monkeypatch, bad):
    _, raw = tiny
    srv, url = server
    write_gz(srv, raw)
    payload = bytearray(raw[IDX[2]])
    payload[-1] ^= 0xFF
    (srv / IDX[2]).write_bytes(gzip.compress(bytes(payload)) if bad == "flipped" else b"<html>nope</html>")
    monkeypatch.setenv("CROSSBAR_SIM_MNIST_URL", url)
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(err.value)
    assert "checksum" in msg and IDX[2] in msg and data.RAW_MD5["mnist"][IDX[2]] in msg and "\n" not in msg
    left = sorted(p.name for p in (tmp_path / "mnist").iterdir())
    assert left == sorted([IDX[0], IDX[1]])  # verified files stay, nothing partial


def test_server_down_names_files_and_directory(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSBAR_SIM_MNIST_URL", closed_port_url())
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "mnist") in msg and "CROSSBAR_SIM_DATA" in msg
    assert "failed" in msg and all(f in msg for f in IDX)
    assert [p.name for p in (tmp_path / "mnist").iterdir()] == []


def test_http_404_is_a_download_failure(tiny, server, tmp_path, monkeypatch):
    _, raw = tiny
    srv, url = server
    write_gz(srv, {IDX[0]: raw[IDX[0]]})  # the rest are absent on the server
    monkeypatch.setenv("CROSSBAR_SIM_MNIST_URL", url)
    with pytest.raises(DataError, match="HTTP 404") as err:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(err.value)
    assert IDX[0] not in msg and all(f in msg for f in IDX[1:])  # only what is still missing


def test_download_disabled_message(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSBAR_SIM_MNIST_URL", closed_port_url())
    monkeypatch.setattr(data, "_download", lambda *a: pytest.fail("download attempted"))
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / IDX[0]).write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "\n" not in msg and "disabled" in msg and "CROSSBAR_SIM_DATA" in msg
    assert str(tmp_path / "mnist") in msg and IDX[0] not in msg and all(f in msg for f in IDX[1:])


# ---------------------------------------------------------------- malformed IDX

@pytest.mark.parametrize("case", ["magic", "ndim", "truncated"])
def test_malformed_idx(tiny, tmp_path, monkeypatch, case):
    _, raw = tiny
    good = raw[IDX[0]]
    bad = {"magic": b"\x08\x03\x00\x00" + good[4:],      # bytes swapped
           "ndim": good[:3] + b"\x02" + good[4:],
           "truncated": good[:-10]}[case]
    raw = {**raw, IDX[0]: bad}
    # Patch the checksum to match so the parser, not the md5 check, must catch it.
    monkeypatch.setitem(data.RAW_MD5, "mnist", {f: hashlib.md5(b).hexdigest() for f, b in raw.items()})
    write_gz(tmp_path / "mnist", raw)
    with pytest.raises(DataError, match="malformed IDX") as err:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert IDX[0] in str(err.value) and "\n" not in str(err.value)


def test_wrong_magic_is_rejected_by_checksum_too(tiny, tmp_path):
    _, raw = tiny
    write_gz(tmp_path / "mnist", {**raw, IDX[2]: b"\xff\xff\xff\xff" + raw[IDX[2]][4:]})
    with pytest.raises(DataError, match=IDX[2]):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_stalled_server_times_out(tiny, tmp_path, monkeypatch):
    """A server that accepts the connection but never answers must not hang the run."""
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT", 0.3)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel completes the handshake; nobody ever replies
        monkeypatch.setenv("CROSSBAR_SIM_MNIST_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/")
        with pytest.raises(DataError, match="timed out") as err:
            load_dataset("mnist", data_dir=tmp_path)
    assert str(tmp_path / "mnist") in str(err.value)
    assert [p.name for p in (tmp_path / "mnist").iterdir()] == []


def test_read_only_folder_gets_no_cache(tiny, tmp_path):
    """Root ignores permission bits, so a folder marked read-only must be honoured explicitly."""
    _, raw = tiny
    folder = tmp_path / "mnist"
    write_gz(folder, raw)
    folder.chmod(0o555)
    try:
        assert load_dataset("mnist", data_dir=tmp_path).x_train.shape == (5, 784)
        assert sorted(p.name for p in folder.iterdir()) == sorted(IDX)
    finally:
        folder.chmod(0o755)


def test_train_and_test_limits_keep_the_first_samples():
    from crossbar_sim.config import load_scenario
    from crossbar_sim.run import dataset_for

    full = dataset_for(load_scenario(raw={"data": {"name": "digits"}}))
    cut = dataset_for(load_scenario(raw={"data": {"name": "digits", "train_limit": 50, "test_limit": 30}}))
    assert cut.x_train.shape[0] == 50 and cut.x_test.shape[0] == 30
    np.testing.assert_array_equal(cut.x_test, full.x_test[:30])
    np.testing.assert_array_equal(cut.y_train, full.y_train[:50])
