"""Autograd reference: backpropagation through time over the same relaxation, in float64 torch (the relaxation
is the relaxed BP twin's, :func:`crossbar_sim.bp_twin.relax`)."""
import numpy as np
import torch
import torch.nn.functional as F

from crossbar_sim.bp_twin import relax


def bptt_gradient(x, y, weights, L, loss, steps, hi=1.0, edges=None, colors=None, masks=None, aux_weight=1.0,
                  omega=1.0):
    """-dLoss/dW for every block, by BPTT through ``steps`` coordinate-descent steps from zero states (each block
    moved ``omega`` times the way to its minimiser, as the over-relaxed kernel does).

    Args:
        weights: one (n_src + bias, n_dst) array per block, bias row last (driven by ``hi``); with
            ``cross_entropy`` the last block is the softmax readout.
        L: number of state layers.
        edges: (src, dst, bias) or (src, dst, bias, ConvGeometry) per block; default the chain with biases. A
            convolutional block's weights are its unrolled kernel (C k k [+ 1], C_out); torch's conv2d and
            conv_transpose2d act with it.
        colors: colour per layer 0..L; default odd/even.
        masks: per block, None or the (rows, cols) 0/1 mask of the stored matrix (the gradient is masked too).
        aux_weight: with ``cross_entropy``, blocks into layer L + 1 after the main readout are auxiliary
            readouts, whose cross-entropies add ``aux_weight`` times to the loss.
    """
    if edges is None:
        edges = [(l - 1, l, True) for l in range(1, len(weights) + 1)]
    edges = [tuple(e) + (None,) * (4 - len(e)) for e in edges]
    if colors is None:
        colors = [0] + [(l + 1) % 2 for l in range(1, L + 1)]
    masks = masks or [None] * len(weights)
    Ws = [torch.tensor(np.asarray(W, dtype=np.float64), requires_grad=True) for W in weights]
    Ms = [W if m is None else W * torch.tensor(np.asarray(m, dtype=np.float64)) for W, m in zip(Ws, masks)]
    xt = torch.tensor(np.asarray(x, dtype=np.float64))
    yt = torch.tensor(np.asarray(y, dtype=np.float64))
    blocks = [(src, dst, bias, g, W) for (src, dst, bias, g), W in zip(edges, Ms) if dst <= L]
    s = relax(torch, xt, blocks, L, colors, steps, hi, omega)
    if loss == "mse":
        value = 0.5 * ((s[L] - yt) ** 2).sum(1).mean()
    else:
        value = 0.0
        for (src, dst, *_), V in zip(edges, Ms):
            if dst == L + 1:
                logits = s[src] @ V[:-1] + hi * V[-1]
                value = value + (1.0 if src == L else aux_weight) * F.cross_entropy(logits, yt.argmax(1))
    grads = torch.autograd.grad(value, Ws)
    return [-g.numpy() for g in grads]
