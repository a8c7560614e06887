"""Autograd reference: backpropagation through time over the same relaxation, in float64 torch."""
import numpy as np
import torch


def bptt_gradient(x, y, weights, L, loss, steps, hi=1.0):
    """-dLoss/dW for every matrix, by BPTT through ``steps`` coordinate-descent steps from zero states.

    Args:
        weights: list of (n_in + 1, n_out) arrays, bias row last (driven by ``hi``); with ``cross_entropy`` the
            last matrix is the softmax readout.
        L: number of state layers.
    """
    Ws = [torch.tensor(np.asarray(W, dtype=np.float64), requires_grad=True) for W in weights]
    xt = torch.tensor(np.asarray(x, dtype=np.float64))
    yt = torch.tensor(np.asarray(y, dtype=np.float64))
    B = xt.shape[0]
    s = [torch.zeros(B, W.shape[1], dtype=torch.float64) for W in Ws[:L]]

    def pre(l):  # 1-based layer
        below = xt if l == 1 else s[l - 2]
        p = below @ Ws[l - 1][:-1] + hi * Ws[l - 1][-1]
        if l < L:
            p = p + s[l] @ Ws[l][:-1].T
        return p

    for _ in range(steps):
        for l in [l for l in range(1, L + 1) if l % 2 == 1] + [l for l in range(1, L + 1) if l % 2 == 0]:
            s[l - 1] = torch.clamp(pre(l), 0.0, hi)
    if loss == "mse":
        value = 0.5 * ((s[-1] - yt) ** 2).sum(1).mean()
    else:
        V = Ws[L]
        logits = s[-1] @ V[:-1] + hi * V[-1]
        value = torch.nn.functional.cross_entropy(logits, yt.argmax(1))
    grads = torch.autograd.grad(value, Ws)
    return [-g.numpy() for g in grads]
