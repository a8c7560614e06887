"""Hopfield networks on a general connection graph: layers joined by weight blocks, each block optionally
masked. The layered network (Scellier & Bengio 2017) is the chain; Gammell et al. 2021's small-world
networks add layer-skipping blocks.

Layers s_0 (input, clamped) and s_1 ... s_L (free states); with the cross-entropy readout (Laborieux 2021)
one more block joins s_L to the classes, outside the dynamics, and is always the last block. A block
``Edge(src, dst)`` with ``src < dst`` holds an (n_src + bias, n_dst) matrix; the bias of layer l is the extra
last row of exactly one block into l (by convention the one from l - 1), driven by the constant ``x_max``
(see :mod:`crossbar_sim.tiles`). A mask (n_src, n_dst) marks which connections exist: a masked entry is not
a device at all. The energy is

    E = 1/2 sum_l |s_l|^2 - sum_e s_src^T (M_e * W_e) s_dst - sum_l b_l . s_l .

Exact block-coordinate updates need a colouring of the layer graph in which no block joins two layers of one
colour (:meth:`Network.colors`): for a chain that is odd/even, but a block that skips one layer joins two
layers of the same parity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from networks.activations import Activation
from networks.convolution import ConvGeometry, fold, nchw_to_pixels, patches, pixels_to_nchw, pool_max


DENSE_EIGEN = 200  # Network.free_coupling_max: up to this many free units, a dense eigendecomposition


@dataclass(frozen=True, eq=False)
class Edge:
    """One connection block: ``src`` -> ``dst`` layers, with the bias row of ``dst`` or not, and a mask; or a
    convolution (``conv``), whose block is the unrolled kernel (C k k [+ 1], C_out) and has no mask."""

    src: int
    dst: int
    bias: bool = False
    mask: np.ndarray | None = None  # (n_src, n_dst) bool; None: every connection exists
    conv: ConvGeometry | None = None

    def shape(self, sizes) -> tuple[int, int]:
        """The stored matrix: (n_src [+ 1], n_dst), or for a convolution (C k k [+ 1], C_out)."""
        if self.conv is not None:
            return self.conv.patch + self.bias, sizes[self.dst] // self.conv.pooled
        return sizes[self.src] + self.bias, sizes[self.dst]

    def full_mask(self, sizes) -> np.ndarray | None:
        """The mask of the stored matrix, bias row (never masked) included; None when dense."""
        if self.mask is None or self.conv is not None:
            return None
        out = np.ones((sizes[self.src] + self.bias, sizes[self.dst]), dtype=bool)
        out[: sizes[self.src]] = self.mask
        return out

    @property
    def adjacent(self) -> bool:
        return self.dst == self.src + 1


@dataclass(frozen=True, eq=False)
class Network:
    """Topology and activation.

    Attributes:
        sizes: units per layer, input first, classes last.
        activation: the state box.
        readout: ``state`` (the last layer is a state, MSE loss) or ``softmax`` (cross-entropy readout).
        edges: the blocks of the dynamics, then, with ``softmax``, the readout blocks into the classes (layer
            L + 1): the readout from L first, then any auxiliary readouts from intermediate layers (intermediate
            error signals, Lin et al. 2025), each with its own bias row.
    """

    sizes: tuple[int, ...]
    activation: Activation
    readout: str
    edges: tuple[Edge, ...]

    def __post_init__(self):
        problems = self.problems()
        if problems:
            raise ValueError(problems[0])

    @property
    def n_state_layers(self) -> int:
        """L: the number of free state layers."""
        return len(self.sizes) - (1 if self.readout == "state" else 2)

    @property
    def state_edges(self) -> tuple[Edge, ...]:
        """The blocks inside the dynamics (the readout blocks excluded)."""
        return self.edges[: len(self.edges) - len(self.readout_edges)]

    @property
    def readout_edges(self) -> tuple[Edge, ...]:
        """The softmax readout blocks, main (from L) first, then the auxiliary ones; none with ``state``."""
        if self.readout == "state":
            return ()
        classes = len(self.sizes) - 1
        k = len(self.edges)
        while k > 0 and self.edges[k - 1].dst == classes:
            k -= 1
        return self.edges[k:]

    @property
    def aux_layers(self) -> tuple[int, ...]:
        """Layers with an auxiliary readout."""
        return tuple(e.src for e in self.readout_edges[1:])

    def problems(self) -> list[str]:
        L, n = self.n_state_layers, self.sizes
        out = []
        for e in self.edges:
            if not 0 <= e.src < e.dst < len(n):
                out.append(f"block {e.src}->{e.dst}: layers must satisfy 0 <= src < dst < {len(n)}")
            elif e.mask is not None and e.mask.shape != (n[e.src], n[e.dst]):
                out.append(f"block {e.src}->{e.dst}: mask shape {e.mask.shape}, expected {(n[e.src], n[e.dst])}")
            elif e.conv is not None:
                g = e.conv
                if e.mask is not None:
                    out.append(f"block {e.src}->{e.dst}: a convolution takes no mask")
                if n[e.src] != g.C * g.H * g.W:
                    out.append(f"block {e.src}->{e.dst}: layer {e.src} has {n[e.src]} units, the convolution reads "
                               f"{g.C}x{g.H}x{g.W} = {g.C * g.H * g.W}")
                if n[e.dst] % g.pooled:
                    oh, ow = g.OH // g.pool, g.OW // g.pool
                    out.append(f"block {e.src}->{e.dst}: layer {e.dst} has {n[e.dst]} units, not a whole number of "
                               f"{oh}x{ow} output channels")
        for l in range(1, L + 1 if self.readout == "softmax" else len(n)):
            holders = [e for e in self.edges if e.dst == l and e.bias]
            if len(holders) != 1:
                out.append(f"layer {l}: {len(holders)} blocks hold its bias row, expected exactly one")
        if self.readout == "softmax":
            readouts = self.readout_edges
            srcs = [e.src for e in readouts]
            if not readouts or srcs[0] != L or any(e.dst == L + 1 for e in self.state_edges):
                out.append("the readout block L -> L + 1 must come first among the blocks into the classes, "
                           "which come last")
            elif any(not 1 <= a < L for a in srcs[1:]) or len(set(srcs)) != len(srcs):
                out.append(f"auxiliary readouts must come from distinct intermediate layers 1..{L - 1}, got {srcs[1:]}")
            elif not all(e.bias and e.conv is None and e.mask is None for e in readouts):
                out.append("a readout block is dense, unmasked and holds its own bias row")
        return out

    def colors(self) -> np.ndarray:
        """Colour of each layer (index 0, the input, unused): layers of one colour share no block, so updating
        one colour at a time is exact block-coordinate descent. Greedy in layer order: odd/even for a chain."""
        L = self.n_state_layers
        colour = np.zeros(L + 1, dtype=np.int64)
        neighbours = {l: set() for l in range(1, L + 1)}
        for e in self.state_edges:
            if e.src >= 1:
                neighbours[e.src].add(e.dst)
                neighbours[e.dst].add(e.src)
        for l in range(1, L + 1):
            used = {colour[k] for k in neighbours[l] if k < l}
            colour[l] = next(c for c in range(L + 1) if c not in used)
        return colour

    def connections(self, edge: Edge) -> int:
        """Weights of the block (devices of one sign), the bias row left out."""
        if edge.conv is not None:
            return edge.conv.patch * edge.shape(self.sizes)[1]
        return int(edge.mask.sum()) if edge.mask is not None else self.sizes[edge.src] * self.sizes[edge.dst]

    def init_weights(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Adjacent and readout blocks Glorot-uniform U[-a, a], a = sqrt(6 / (n_src + n_dst)) (a convolution's over
        its kernel's fans); layer-skipping blocks U[-a_skip, a_skip] with a_skip the mean of the adjacent bounds
        over every adjacent layer pair (Gammell et al. 2021); zero biases, zero at masked connections. One
        (n_src + bias, n_dst) array per block."""
        n = self.sizes
        a_skip = float(np.mean([np.sqrt(6.0 / (a + b)) for a, b in zip(n[:-1], n[1:])]))
        weights = []
        for e in self.edges:
            rows, cols = e.shape(n)
            if e.conv is not None:  # Glorot over the kernel's fan-in C_in k k and fan-out C_out k k
                a = np.sqrt(6.0 / (e.conv.patch + cols * e.conv.k ** 2))
            else:
                readout = self.readout == "softmax" and e.dst == len(n) - 1  # Glorot for every readout too
                a = np.sqrt(6.0 / (n[e.src] + n[e.dst])) if e.adjacent or readout else a_skip
            W = np.zeros((rows, cols))
            W[: rows - e.bias] = rng.uniform(-a, a, size=(rows - e.bias, cols))
            if e.mask is not None:
                W[: n[e.src]] *= e.mask
            weights.append(W)
        return weights

    def energy(self, x: np.ndarray, states: list[np.ndarray], weights: list[np.ndarray]) -> np.ndarray:
        """Per-sample energy (float64, shape (B,)) of the states, the input clamped."""
        x_max = self.activation.bound
        layers = [np.asarray(x, np.float64)] + [np.asarray(s, np.float64) for s in states]
        E = 0.5 * sum((s ** 2).sum(1) for s in layers[1:])
        for e, W in zip(self.state_edges, weights):
            lower, upper = layers[e.src], layers[e.dst]
            if e.conv is not None:
                g, B = e.conv, lower.shape[0]
                pix = patches(lower, g) @ W[: g.patch] + (x_max * W[-1] if e.bias else 0.0)  # (B P, C_out)
                out = pool_max(pix, B, g)[0] if g.pool > 1 else pixels_to_nchw(pix, B, g)
                E = E - (out * upper).sum(1)
                continue
            E = E - ((lower @ W[: self.sizes[e.src]]) * upper).sum(1)
            if e.bias:
                E = E - x_max * (upper @ W[-1])
        return E

    def coupling(self, weights: list[np.ndarray], states: list[np.ndarray]) -> list[np.ndarray]:
        """``C s``: the states' coupling applied to ``states`` (layers 1..L, (B, n_l) each), where the energy is
        ``1/2 s^T (I - C) s`` less its linear terms (input, biases): every block between two state layers read
        forward into its destination and transposed into its source. Raises ValueError for a pooling block,
        whose coupling is not linear."""
        out = [np.zeros_like(np.asarray(v, np.float64)) for v in states]
        B = states[0].shape[0]
        for e, W in zip(self.state_edges, weights):
            if e.src == 0:
                continue
            lower, upper = states[e.src - 1], states[e.dst - 1]
            g = e.conv
            if g is None:
                K = W[: self.sizes[e.src]]
                out[e.dst - 1] += lower @ K
                out[e.src - 1] += upper @ K.T
                continue
            if g.pool > 1:
                raise ValueError(f"block {e.src}->{e.dst} max-pools: its coupling is not linear")
            K = W[: g.patch]
            out[e.dst - 1] += pixels_to_nchw(patches(lower, g) @ K, B, g)
            out[e.src - 1] += fold(nchw_to_pixels(upper, g) @ K.T, B, g)
        return out

    def coupling_extremes(self, weights: list[np.ndarray]) -> tuple[float, float]:
        """The largest and the smallest eigenvalue of the states' coupling ``C`` (:meth:`coupling`, symmetric).
        While the largest is below 1 the energy is strongly convex: one equilibrium per input, and the
        relaxation contracts to it."""
        n = sum(self.sizes[1: self.n_state_layers + 1])
        return _extreme_eigenvalues(lambda v: self._flat_coupling(weights, v), n, "BE", tol=1e-8)

    def free_coupling_max(self, weights: list[np.ndarray], state: np.ndarray) -> tuple[float, float]:
        """For one sample's flat state over the L state layers: the share of units strictly inside the
        activation's box (free), and the largest eigenvalue of the coupling restricted to them, ``D C D``. The
        energy's Hessian on the free units is ``I - D C D``: the state is a strict minimum, and the relaxation
        contracts to it, only while that eigenvalue is below 1 (0 when no unit is free)."""
        free = (state > 0) & (state < self.activation.bound)
        n = int(free.sum())
        if n == 0:
            return 0.0, 0.0

        def apply(v):
            full = np.zeros(len(state))
            full[free] = v
            return self._flat_coupling(weights, full)[free]

        return n / len(state), _extreme_eigenvalues(apply, n, "LA", tol=1e-6)[0]

    def _flat_coupling(self, weights: list[np.ndarray], v: np.ndarray) -> np.ndarray:
        """:meth:`coupling` of one flat vector over the L state layers."""
        cuts = np.cumsum(self.sizes[1: self.n_state_layers + 1])[:-1]
        return np.concatenate(self.coupling(weights, np.split(np.ravel(v)[None], cuts, axis=1)), axis=1)[0]


def _extreme_eigenvalues(apply, n: int, which: str, tol: float) -> tuple[float, ...]:
    """Of the symmetric operator ``apply`` on R^n: with ``which="LA"`` (largest,), with ``"BE"`` (largest,
    smallest). A dense eigendecomposition up to ``DENSE_EIGEN``, else Lanczos (scipy's ``eigsh``) from a fixed
    start (to relative accuracy ``tol``), so the same weights give the same numbers."""
    if n <= DENSE_EIGEN:
        eig = np.linalg.eigvalsh(np.stack([apply(np.eye(n)[i]) for i in range(n)]))
        return (float(eig[-1]),) if which == "LA" else (float(eig[-1]), float(eig[0]))
    if not apply(np.ones(n)).any():  # Lanczos cannot start from a vector the operator sends to 0
        return (0.0,) if which == "LA" else (0.0, 0.0)
    from scipy.sparse.linalg import LinearOperator, eigsh

    op = LinearOperator((n, n), matvec=apply, dtype=np.float64)
    values = eigsh(op, k=1 if which == "LA" else 2, which=which, v0=np.ones(n), tol=tol,
                   return_eigenvectors=False)
    return (float(values.max()),) if which == "LA" else (float(values.max()), float(values.min()))


def chain(sizes) -> tuple[Edge, ...]:
    """The layered network's blocks: each layer joined to the next, with its bias."""
    return tuple(Edge(l - 1, l, bias=True) for l in range(1, len(sizes)))


def with_aux_readouts(network: Network, layers) -> Network:
    """``network`` (with a softmax readout) plus an auxiliary softmax readout on each of ``layers``: dense
    blocks into the classes, each with its own bias row, after the main readout. Raises ValueError for a layer
    that cannot have one."""
    if network.readout != "softmax":
        raise ValueError("auxiliary readouts need the softmax readout (cross-entropy)")
    classes = len(network.sizes) - 1
    extra = tuple(Edge(a, classes, bias=True) for a in layers)
    return Network(network.sizes, network.activation, network.readout, network.edges + extra)
