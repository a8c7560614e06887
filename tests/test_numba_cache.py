"""The guard against stale Numba caches: an edit of any module of the kernel packages drops every cached kernel."""
from crossbar_sim import _numba_cache


def _tree(root):
    for package in _numba_cache._PACKAGES:
        (root / package / "__pycache__").mkdir(parents=True)
        (root / package / "mod.py").write_text(f"# {package}\n")


def _cached(root):
    stale = root / "crossbar_sim" / "__pycache__" / "kernels.settle-1.py311.nbi"
    stale.write_text("x")
    return stale


def test_unchanged_sources_keep_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(_numba_cache, "_ROOT", tmp_path)
    _tree(tmp_path)
    _numba_cache.check()
    stale = _cached(tmp_path)
    _numba_cache.check()
    assert stale.exists()


def test_an_edit_of_a_called_module_drops_the_cache(tmp_path, monkeypatch):
    # conv.py's functions are compiled into the settle kernel of kernels.py: editing any module must count.
    monkeypatch.setattr(_numba_cache, "_ROOT", tmp_path)
    _tree(tmp_path)
    _numba_cache.check()
    for package in _numba_cache._PACKAGES:
        stale = _cached(tmp_path)
        (tmp_path / package / "mod.py").write_text(f"# {package}, edited\n")
        _numba_cache.check()
        assert not stale.exists(), package


def test_a_new_module_drops_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(_numba_cache, "_ROOT", tmp_path)
    _tree(tmp_path)
    _numba_cache.check()
    stale = _cached(tmp_path)
    (tmp_path / "networks" / "extra.py").write_text("")
    _numba_cache.check()
    assert not stale.exists()
