"""Autograd reference: backpropagation through time over the same relaxation, in float64 torch."""
import numpy as np
import torch


def bptt_gradient(x, y, weights, L, loss, steps, hi=1.0, edges=None, colors=None, masks=None):
    """-dLoss/dW for every block, by BPTT through ``steps`` coordinate-descent steps from zero states.

    Args:
        weights: one (n_src + bias, n_dst) array per block, bias row last (driven by ``hi``); with
            ``cross_entropy`` the last block is the softmax readout.
        L: number of state layers.
        edges: (src, dst, bias) per block; default the chain with biases.
        colors: colour per layer 0..L; default odd/even.
        masks: per block, None or the (rows, cols) 0/1 mask of the stored matrix (the gradient is masked too).
    """
    if edges is None:
        edges = [(l - 1, l, True) for l in range(1, len(weights) + 1)]
    if colors is None:
        colors = [0] + [(l + 1) % 2 for l in range(1, L + 1)]
    masks = masks or [None] * len(weights)
    Ws = [torch.tensor(np.asarray(W, dtype=np.float64), requires_grad=True) for W in weights]
    Ms = [W if m is None else W * torch.tensor(np.asarray(m, dtype=np.float64)) for W, m in zip(Ws, masks)]
    xt = torch.tensor(np.asarray(x, dtype=np.float64))
    yt = torch.tensor(np.asarray(y, dtype=np.float64))
    B = xt.shape[0]
    sizes = {0: xt.shape[1]}
    for (src, dst, bias), W in zip(edges, weights):
        sizes[dst] = W.shape[1]
    s = {l: torch.zeros(B, sizes[l], dtype=torch.float64) for l in range(1, L + 1)}
    s[0] = xt
    inner = edges if loss == "mse" else edges[:-1]

    def pre(l):
        p = torch.zeros(B, sizes[l], dtype=torch.float64)
        for (src, dst, bias), W in zip(inner, Ms):
            n_src = W.shape[0] - bias
            if dst == l:
                p = p + s[src] @ W[:n_src] + (hi * W[-1] if bias else 0.0)
            elif src == l:
                p = p + s[dst] @ W[:n_src].T
        return p

    for _ in range(steps):
        for colour in range(max(colors[1:]) + 1):
            for l in [l for l in range(1, L + 1) if colors[l] == colour]:
                s[l] = torch.clamp(pre(l), 0.0, hi)
    if loss == "mse":
        value = 0.5 * ((s[L] - yt) ** 2).sum(1).mean()
    else:
        V = Ms[-1]
        logits = s[L] @ V[:-1] + hi * V[-1]
        value = torch.nn.functional.cross_entropy(logits, yt.argmax(1))
    grads = torch.autograd.grad(value, Ws)
    return [-g.numpy() for g in grads]
