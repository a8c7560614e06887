"""Settle-call time by the number of row blocks (engine.settle_chunks replaced by a constant) and threads, 30 free
steps, batch 50, ideal tiles: the cost behind engine.settle_chunks. Usage: python benchmarks/settle_blocks.py
"""
import time
import numpy as np, numba, yaml
import crossbar_sim.engine as E
from crossbar_sim.config import load_scenario
from crossbar_sim.trainer import build_network, initial_weights
from crossbar_sim.tiles import Periphery
from device_models.ideal import Ideal
cases = [("quickstart", "scenarios/quickstart.yaml", []), ("dense784-500", "scenarios/quickstart.yaml", ["sizes"]),
         ("conv_pooled", "benchmarks/seeds/deep/fmnist_conv.yaml", []), ("conv_strided", "benchmarks/seeds/deep/fmnist_conv_strided.yaml", [])]
for name, path, mod in cases:
    sc = load_scenario(path)
    if mod:
        raw = yaml.safe_load(open(path)); raw["network"]["sizes"] = [784, 500, 10]; sc = load_scenario(raw=raw)
    rng = np.random.default_rng(0)
    net = build_network(sc, rng); W = initial_weights(net, sc.network.init_gain, rng)
    B = 50
    x = np.random.default_rng(1).random((B, net.sizes[0])).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(B) % 10]
    e = E.Engine(net, W, Ideal(), Periphery(), "round", np.random.default_rng(0))
    for t in (1, 2):
        numba.set_num_threads(t)
        row = []
        for c in (1, 2, 4, 8):
            E.settle_chunks = lambda batch, c=c: min(c, batch)
            S = np.zeros(B * e.state_size(), np.float32); e.settle(x, y, S, 0.0, 30, "coordinate", 0.0, 0.5)
            reps = 3 if "conv" in name else 30
            t0 = time.perf_counter()
            for _ in range(reps):
                S[:] = 0; e.settle(x, y, S, 0.0, 30, "coordinate", 0.0, 0.5)
            row.append((time.perf_counter() - t0) / reps * 1e3)
        print(f"{name:14s} threads {t}: " + "  ".join(f"chunks {c}: {v:8.2f} ms" for c, v in zip((1, 2, 4, 8), row)), flush=True)
