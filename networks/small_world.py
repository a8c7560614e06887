"""Small-world layer-skipping networks (Gammell et al. 2021): a layered network whose connections are
partly rewired to skip layers.

Start from the layered network: its connections are every pair of neurons in adjacent layers (input to the
first hidden layer and the last hidden layer to the output included); the candidates are every pair of
neurons whose layers differ by two or more. For each existing connection, in order, with probability p:
remove it (it becomes a candidate) and add a candidate drawn uniformly (it stops being one). The number of
connections stays the same. The variant ``add`` keeps every layered connection and adds round(p * N) random
candidates instead. The result is a :class:`networks.graph.Network`: the adjacent blocks (masked where
connections were removed, each still holding its layer's bias) and one masked block for every pair of
layers that received a skip connection.
"""
from __future__ import annotations

import numpy as np

from networks.activations import Activation
from networks.graph import Edge, Network

REWIRINGS = ("rewire", "add")


def _pairs(sizes, min_gap: int) -> list[tuple[int, int]]:
    """Layer pairs (a, b), a < b, with b - a >= min_gap (only adjacent ones when min_gap is 1 and max 1)."""
    L = len(sizes) - 1
    return [(a, b) for a in range(L + 1) for b in range(a + 1, L + 1) if b - a >= min_gap]


def rewire(sizes, p: float, rng: np.random.Generator, mode: str = "rewire") -> dict[tuple[int, int], np.ndarray]:
    """The connection masks, one (n_a, n_b) bool array per layer pair that has a connection.

    Args:
        sizes: units per layer, input first.
        p: rewiring probability (``rewire``) or added fraction (``add``), in [0, 1].
        rng: the run's topology generator (the result is a function of it alone).
        mode: ``rewire`` or ``add``.
    """
    if mode not in REWIRINGS:
        raise ValueError(f"rewiring must be one of {REWIRINGS}, got {mode!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    adjacent = [(l, l + 1) for l in range(len(sizes) - 1)]
    skips = _pairs(sizes, 2)
    blocks = adjacent + skips  # global connection ids: block by block, row-major inside a block
    size = np.array([sizes[a] * sizes[b] for a, b in blocks], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(size)])
    n_adj = int(start[len(adjacent)])
    exists = np.zeros(int(start[-1]), dtype=bool)
    exists[:n_adj] = True
    candidates = np.arange(n_adj, start[-1], dtype=np.int64)
    if mode == "add":
        if candidates.size:
            k = min(int(round(p * n_adj)), candidates.size)
            exists[rng.choice(candidates, size=k, replace=False)] = True
    elif candidates.size:
        chosen = np.flatnonzero(rng.random(n_adj) < p)
        # The pool holds the candidates plus the connection just removed, so its size when drawing is fixed.
        draws = rng.integers(0, candidates.size + 1, size=chosen.size)
        pool = np.append(candidates, -1)
        last = candidates.size
        for removed, j in zip(chosen.tolist(), draws.tolist()):
            exists[removed] = False
            pool[last] = removed  # the removed connection joins the candidates ...
            added = pool[j]       # ... one candidate is drawn and leaves them
            pool[j] = pool[last]
            exists[added] = True
    masks = {}
    for k, (a, b) in enumerate(blocks):
        m = exists[start[k]: start[k + 1]].reshape(sizes[a], sizes[b])
        if (a, b) in adjacent or m.any():
            masks[(a, b)] = m.copy()
    return masks


def small_world(sizes, activation: Activation, readout: str, p: float, rng: np.random.Generator,
                mode: str = "rewire") -> Network:
    """A small-world network over ``sizes``; with the ``softmax`` readout the rewiring covers the layers
    up to the last state layer and the readout block stays dense."""
    inner = list(sizes) if readout == "state" else list(sizes[:-1])
    masks = rewire(inner, p, rng, mode)
    edges = []
    for (a, b), m in sorted(masks.items(), key=lambda kv: (kv[0][1] - kv[0][0] > 1, kv[0])):
        edges.append(Edge(a, b, bias=b == a + 1, mask=None if m.all() else m))
    if readout == "softmax":
        L = len(sizes) - 2
        edges.append(Edge(L, L + 1, bias=True))
    return Network(tuple(sizes), activation, readout, tuple(edges))


def log_spread(rms: np.ndarray) -> float:
    """Gammell et al.'s spread of learning speeds across layers: the standard deviation over the layers of
    log10 of each layer's mean RMS correction (``rms``: one value per adjacent block)."""
    return float(np.std(np.log10(np.asarray(rms, dtype=float))))
