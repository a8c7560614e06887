"""crossbar-sim: Equilibrium Propagation on simulated memristive crossbar hardware."""
__version__ = "0.1.0"
