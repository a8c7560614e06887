"""Pack lists of layers and matrices into the settle kernel's flat layout (the engine does this for real runs)."""
import numpy as np


def pack(sizes, weights, states, batch):
    n = np.asarray(sizes, dtype=np.int64)
    L = len(states)
    soff = np.zeros(L + 1, dtype=np.int64)
    for l in range(1, L):
        soff[l + 1] = soff[l] + batch * n[l]
    S = np.concatenate([s.ravel() for s in states]).astype(np.float32)
    woff = np.zeros(len(weights) + 1, dtype=np.int64)
    wtoff = np.zeros(len(weights) + 1, dtype=np.int64)
    wf, wtf, a, b = [], [], 0, 0
    for m, W in enumerate(weights, start=1):
        woff[m], wtoff[m] = a, b
        wf.append(W.ravel())
        wtf.append(np.ascontiguousarray(W[:-1].T).ravel())
        a += W.size
        b += W[:-1].size
    return n, soff, S, np.concatenate(wf).astype(np.float32), np.concatenate(wtf).astype(np.float32), woff, wtoff


def unpack(S, sizes, L, batch):
    out, o = [], 0
    for l in range(1, L + 1):
        out.append(S[o: o + batch * sizes[l]].reshape(batch, sizes[l]))
        o += batch * sizes[l]
    return out
