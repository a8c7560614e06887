"""crossbar-sim: Equilibrium Propagation on simulated memristive crossbar hardware."""
from crossbar_sim import _numba_cache

__version__ = "0.1.0"

_numba_cache.check()
