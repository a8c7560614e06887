"""Load a benchmark script (not a package module) by its path, for the tests of the scripts' functions."""
import importlib.util
from pathlib import Path

DEEP = Path(__file__).resolve().parents[2] / "benchmarks" / "seeds" / "deep"


def load_script(name: str):
    """``benchmarks/seeds/deep/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(name, DEEP / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
