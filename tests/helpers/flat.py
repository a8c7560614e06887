"""Pack lists of layers and matrices into the settle kernel's flat layout (the engine does this for real runs)."""
import numpy as np

from networks.convolution import N_CONV


def pack(sizes, weights, states, batch, edges=None, colors=None, readout=False):
    """Flat arrays for :func:`crossbar_sim.kernels.settle`.

    Args:
        edges: (src, dst, bias) or (src, dst, bias, ConvGeometry) per block of ``weights``; default the chain
            with biases.
        colors: colour per layer 0..L; default odd/even.
        readout: unused (the blocks into layer L + 1 are the cross-entropy readouts).

    Returns:
        (n, soff, S, Wf, WTf, edge table, conv table, adj_ptr, adj, color).
    """
    n = np.asarray(sizes, dtype=np.int64)
    L = len(states)
    if edges is None:
        edges = [(l - 1, l, True) for l in range(1, len(weights) + 1)]
    edges = [tuple(e) + (None,) * (4 - len(e)) for e in edges]
    if colors is None:
        colors = [0] + [(l + 1) % 2 for l in range(1, L + 1)]
    soff = np.zeros(L + 1, dtype=np.int64)
    for l in range(1, L):
        soff[l + 1] = soff[l] + batch * n[l]
    S = np.concatenate([s.ravel() for s in states]).astype(np.float32)
    table = np.zeros((len(edges), 6), dtype=np.int64)
    geoms = []
    wf, wtf, a, b = [], [], 0, 0
    for k, ((src, dst, bias, geom), W) in enumerate(zip(edges, weights)):
        table[k] = (src, dst, a, b, bias, -1 if geom is None else len(geoms))
        if geom is not None:
            geoms.append(geom.args())
        wf.append(W.ravel())
        wtf.append(np.ascontiguousarray(W[: W.shape[0] - bias].T).ravel())
        a += W.size
        b += W[: W.shape[0] - bias].size
    inner = [e for e in edges if e[1] <= L]  # the readouts (into layer L + 1) are not read by the dynamics
    adj = [[k for k, (src, dst, *_) in enumerate(inner) if src >= 1 and l in (src, dst)] for l in range(L + 1)]
    adj_ptr = np.cumsum([0, 0] + [len(adj[l]) for l in range(1, L + 1)]).astype(np.int64)
    adj_flat = np.array([k for l in range(1, L + 1) for k in adj[l]], dtype=np.int64)
    conv = np.array(geoms, dtype=np.int64).reshape(-1, N_CONV)
    return (n, soff, S, np.concatenate(wf).astype(np.float32), np.concatenate(wtf).astype(np.float32), table, conv,
            adj_ptr, adj_flat, np.asarray(colors, dtype=np.int64))


def unpack(S, sizes, L, batch):
    out, o = [], 0
    for l in range(1, L + 1):
        out.append(S[o: o + batch * sizes[l]].reshape(batch, sizes[l]))
        o += batch * sizes[l]
    return out
