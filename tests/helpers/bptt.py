"""Autograd reference: backpropagation through time over the same relaxation, in float64 torch."""
import numpy as np
import torch
import torch.nn.functional as F


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
    B = xt.shape[0]
    sizes = {0: xt.shape[1]}
    for (src, dst, bias, g), W in zip(edges, weights):
        sizes[dst] = W.shape[1] * (1 if g is None else g.pooled)
    s = {l: torch.zeros(B, sizes[l], dtype=torch.float64) for l in range(1, L + 1)}
    s[0] = xt
    inner = [e for e in edges if e[1] <= L]

    def pre(l):
        p = torch.zeros(B, sizes[l], dtype=torch.float64)
        for (src, dst, bias, g), W in zip(inner, Ms):
            n_src = W.shape[0] - bias
            if g is not None:
                kernel = W[:n_src].T.reshape(-1, g.C, g.k, g.k)

                def conv(src_state, b=None):
                    return F.conv2d(src_state.reshape(B, g.C, g.H, g.W), kernel, b, stride=g.stride, padding=g.pad)

                if dst == l:
                    out = conv(s[src], hi * W[-1] if bias else None)
                    if g.pool > 1:
                        out = F.max_pool2d(out, g.pool)
                    p = p + out.reshape(B, -1)
                elif src == l:
                    up = s[dst].reshape(B, -1, g.OH // g.pool, g.OW // g.pool)
                    if g.pool > 1:  # back to the winners of the source's current state (no gradient through them)
                        _, where = F.max_pool2d(conv(s[src]).detach(), g.pool, return_indices=True)
                        up = F.max_unpool2d(up, where, g.pool, output_size=(g.OH, g.OW))
                    extra = ((g.H + 2 * g.pad - g.k) % g.stride, (g.W + 2 * g.pad - g.k) % g.stride)
                    back = F.conv_transpose2d(up, kernel, stride=g.stride, padding=g.pad, output_padding=extra)
                    p = p + back.reshape(B, -1)
            elif dst == l:
                p = p + s[src] @ W[:n_src] + (hi * W[-1] if bias else 0.0)
            elif src == l:
                p = p + s[dst] @ W[:n_src].T
        return p

    for _ in range(steps):
        for colour in range(max(colors[1:]) + 1):
            for l in [l for l in range(1, L + 1) if colors[l] == colour]:
                s[l] = torch.clamp(s[l] + omega * (pre(l) - s[l]), 0.0, hi)
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
