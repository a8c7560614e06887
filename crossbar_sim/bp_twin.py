"""The backprop twin: a scenario's network as a feedforward torch network, trained with backpropagation.

The seeds report "EP against BP" on the same architecture. The twin takes the scenario's connection graph
(:class:`networks.graph.Network`) and runs it once from input to output: each state layer is the activation of
everything its blocks from lower layers bring (dense or convolutional, max-pooled where the block pools, biases
included), the feedback of the Hopfield dynamics left out. The readout is the same: the last state layer with the
squared error (MSE), or the softmax readout with cross-entropy, plus ``ep.aux_weight`` times the cross-entropy of each
auxiliary readout (``network.aux``), against the distillation's soft targets where ``ep.distill`` sets them, as EP
nudges them. Training uses the scenario's batches, epochs,
per-block learning rates, their schedule and warm-up, gradient-norm clipping, momentum and weight decay (plain SGD; the
rates are per sample means, as in EP), its initial weights (the same seed) and its data order stream, in float32 on the CPU.
``train.free_coupling_cap`` is not applied: it holds the energy model's equilibrium a minimum, and the twin has none.

The relaxed twin (:class:`Relaxed`, ``bp_twin.py --relaxed``) keeps the energy model instead: its layers are what
the free phase's coordinate steps leave them, feedback included, and backprop runs through those steps (BPTT).

torch is only in the ``test`` extra, so this module imports it on use.
"""
from __future__ import annotations

import time
import warnings
from contextlib import contextmanager, nullcontext

import numpy as np

from crossbar_sim.config import Scenario
from crossbar_sim.data import Dataset
from crossbar_sim.trainer import (augmented, bias_scaled, block_rates, build_network, distill_targets,
                                  initial_weights, lr_factor, relative_step, spectral_excess, streams, tangential,
                                  top_singular)
from networks.graph import Network


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a test/reference extra
        raise SystemExit("the BP twin needs torch: pip install -e \".[test]\"") from None
    return torch


def block_forward(torch, g, bias, W, s, hi):
    """What a block brings to its destination from the source state ``s`` (batch, n_src): ``s W`` plus the bias
    row (times ``hi``) for a dense block; for a convolution (geometry ``g``, weights the unrolled kernel) the
    convolution plus the per-channel bias, max-pooled when ``g`` pools."""
    F = torch.nn.functional
    n_src = W.shape[0] - bias
    b = hi * W[-1] if bias else None
    if g is None:
        return s @ W[:n_src] if b is None else s @ W[:n_src] + b
    kernel = W[:n_src].T.reshape(-1, g.C, g.k, g.k)
    out = F.conv2d(s.reshape(len(s), g.C, g.H, g.W), kernel, b, stride=g.stride, padding=g.pad)
    if g.pool > 1:
        out = F.max_pool2d(out, g.pool)
    return out.reshape(len(s), -1)


def block_feedback(torch, g, bias, W, s_src, s_dst):
    """What a block brings back to its source in the Hopfield dynamics: ``s_dst W^T``, or for a convolution
    the transposed convolution of ``s_dst``, each pooled unit routed to its window's winner in the convolution
    of the source's present state (no gradient through the choice of winner, as in the EP update)."""
    F = torch.nn.functional
    n_src = W.shape[0] - bias
    if g is None:
        return s_dst @ W[:n_src].T
    B = len(s_src)
    kernel = W[:n_src].T.reshape(-1, g.C, g.k, g.k)
    up = s_dst.reshape(B, -1, g.OH // g.pool, g.OW // g.pool)
    if g.pool > 1:
        with torch.no_grad():
            conv = F.conv2d(s_src.reshape(B, g.C, g.H, g.W), kernel, stride=g.stride, padding=g.pad)
            _, where = F.max_pool2d(conv, g.pool, return_indices=True)
        up = F.max_unpool2d(up, where, g.pool, output_size=(g.OH, g.OW))
    extra = ((g.H + 2 * g.pad - g.k) % g.stride, (g.W + 2 * g.pad - g.k) % g.stride)
    back = F.conv_transpose2d(up, kernel, stride=g.stride, padding=g.pad, output_padding=extra)
    return back.reshape(B, -1)


def relax(torch, x, blocks, L, colors, steps, hi, omega=1.0, start=None):
    """The free phase in torch, differentiable (BPTT): ``steps`` block-coordinate steps from zero states (or from
    ``start``, states ``{l: (batch, n_l)}`` of an earlier call), one
    colour of layers at a time, each layer moved ``omega`` times the way to its minimiser ``clip(drive, 0, hi)``
    (the coordinate dynamics of :mod:`crossbar_sim.kernels`, without early stop). ``blocks`` are the
    dynamics' blocks as ``(src, dst, bias, conv geometry or None, W)``; returns the states ``{l: (batch, n_l)}``,
    the input as layer 0."""
    B = len(x)
    sizes = {dst: W.shape[1] * (1 if g is None else g.pooled) for src, dst, bias, g, W in blocks}
    s = {0: x, **({l: start[l] for l in range(1, L + 1)} if start else
                  {l: x.new_zeros(B, sizes[l]) for l in range(1, L + 1)})}

    def drive(l):
        p = 0.0
        for src, dst, bias, g, W in blocks:
            if dst == l:
                p = p + block_forward(torch, g, bias, W, s[src], hi)
            elif src == l:
                p = p + block_feedback(torch, g, bias, W, s[src], s[dst])
        return p

    order = [[l for l in range(1, L + 1) if colors[l] == c] for c in range(max(colors[1:]) + 1)]
    for _ in range(steps):
        for layers in order:
            for l in layers:
                s[l] = torch.clamp(s[l] + omega * (drive(l) - s[l]), 0.0, hi)
    return s


class FeedForward:
    """The feedforward reading of ``network``, with its blocks' weights as torch leaves (stored layout:
    (n_src [+ 1 bias row], n_dst), or the unrolled kernel for a convolution)."""

    def __init__(self, network: Network, weights: list[np.ndarray]):
        torch = _torch()
        self.torch = torch
        self.network = network
        self.params = [torch.tensor(np.asarray(W, np.float32), requires_grad=True) for W in weights]
        self.masks = [None if e.mask is None else torch.tensor(e.full_mask(network.sizes).astype(np.float32))
                      for e in network.edges]

    def _block(self, e, W, s):
        """What block ``e`` (weights ``W``) brings to its destination from the source state ``s``."""
        return block_forward(self.torch, e.conv, e.bias, W, s, self.network.activation.bound)

    def _masked(self):
        return [W if m is None else W * m for W, m in zip(self.params, self.masks)]

    def layers(self, x, Ws=None) -> list:
        """The state layers 1 .. L for a batch ``x``: each the clipped sum of its blocks from below."""
        net = self.network
        Ws = self._masked() if Ws is None else Ws
        s = {0: x}
        for l in range(1, net.n_state_layers + 1):
            pre = sum(self._block(e, W, s[e.src]) for e, W in zip(net.edges, Ws) if e.dst == l)
            s[l] = self.torch.clamp(pre, 0.0, net.activation.bound)
        return [s[l] for l in range(1, net.n_state_layers + 1)]

    def forward(self, x):
        """Outputs for a batch ``x`` (torch float32): the last state layer (MSE) or the main readout's logits."""
        return self.outputs(x, aux=False)[0]

    def outputs(self, x, aux: bool = True) -> list:
        """Every output for a batch ``x``: the last state layer (MSE), or the logits of each softmax readout,
        the main one (from layer L) first, then (with ``aux``) the auxiliary ones from intermediate layers."""
        Ws = self._masked()
        layers = self.layers(x, Ws)
        if self.network.readout == "state":
            return [layers[-1]]
        k = len(self.network.state_edges)
        n = len(self.network.edges) if aux else k + 1
        return [self._block(e, W, layers[e.src - 1]) for e, W in zip(self.network.edges[k:n], Ws[k:n])]


class Relaxed(FeedForward):
    """The energy model itself, trained by backprop through time: a state layer is what the free phase's
    ``steps`` block-coordinate steps (over-relaxed by ``omega``) leave it, feedback included, rather than one
    feedforward pass. Same weights, readout and loss as :class:`FeedForward`; it splits EP's distance from
    backprop into what the relaxed model costs and what the EP estimate costs."""

    def __init__(self, network: Network, weights: list[np.ndarray], steps: int, omega: float = 1.0):
        super().__init__(network, weights)
        self.steps, self.omega = steps, omega

    def layers(self, x, Ws=None) -> list:
        net = self.network
        Ws = self._masked() if Ws is None else Ws
        blocks = [(e.src, e.dst, e.bias, e.conv, W) for e, W in zip(net.state_edges, Ws)]
        s = relax(self.torch, x, blocks, net.n_state_layers, list(net.colors()), self.steps, net.activation.bound,
                  self.omega)
        return [s[l] for l in range(1, net.n_state_layers + 1)]


@contextmanager
def flushed_subnormals(torch):
    """Within the block, float results below the smallest normal float (1.2e-38 in float32) are zero, on this
    thread, for torch and NumPy alike (x86's flush-to-zero and denormals-are-zero flags); torch's default, off,
    is restored after. Without it a deep stack whose gradients underflow into subnormal floats trains tens of
    times slower on x86 (measured: the 13-layer ResNet without skips, 0.3 against 6 batches a second, one
    thread, on the 2-core Zen 4 machine beside two EP runs), for values far below anything a weight update can
    carry. Where the CPU cannot flush (torch says so), it warns and trains as without."""
    if not torch.set_flush_denormal(True):
        warnings.warn("this CPU cannot flush subnormal floats to zero: the twin trains without flushing", stacklevel=3)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def train_bp(scenario: Scenario, data: Dataset, progress: bool = True, on_epoch=None,
             train_logits: bool = False, relaxed: bool = False, flush_subnormals: bool = False,
             on_batch=None) -> dict:
    """Train the scenario's network with backprop; returns ``{"history": [...], "test_accuracy", ...,
    "weights"}``, the last the trained blocks as float32 arrays in the network's edge order (bias row last).

    ``on_epoch(row)`` is called after each epoch with ``epoch``, ``train_accuracy`` (running, during the
    epoch), ``test_accuracy`` and ``seconds``; ``on_batch(epoch, batches, correct, predict)`` after each batch,
    with the batches done in this epoch, the training images right so far in it, and ``predict(x)``, the
    twin's class for each row of ``x`` as it stands (it draws no random numbers, so watching changes nothing).
    With ``train_logits`` (a softmax readout only) the result also
    holds ``"train_logits"``: the trained twin's logits of every training image, unaugmented, in the data set's
    order, shape (training samples, classes), float32: a teacher for ``ep.distill.logits``. With ``relaxed`` the
    network is the energy model's free phase (:class:`Relaxed`: ``ep.free_steps`` coordinate steps at
    ``ep.omega``), trained by backprop through time, in training and in scoring. With ``flush_subnormals``
    subnormal floats are zero while it trains (:func:`flushed_subnormals`): far faster where gradients underflow,
    but not the same numbers (off, the default, reproduces the twins recorded before it existed; on, the ResNet
    twin's first epoch scores 80.86% against 80.59%, its training accuracy equal to four digits).
    """
    with flushed_subnormals(_torch()) if flush_subnormals else nullcontext():
        return _train_bp(scenario, data, progress, on_epoch, train_logits, relaxed, on_batch)


def _train_bp(scenario, data, progress, on_epoch, train_logits, relaxed, on_batch) -> dict:
    from tqdm import tqdm

    if data.regression:
        raise ValueError(f"the BP twin scores classification; {data.name} is a regression set")
    if train_logits and scenario.ep.loss != "cross_entropy":
        raise ValueError("teacher logits come from a softmax readout: set ep.loss=cross_entropy")
    if relaxed and scenario.ep.dynamics != "coordinate":
        raise ValueError(f"the relaxed twin runs the coordinate dynamics; the scenario's is {scenario.ep.dynamics}")
    torch = _torch()
    torch.manual_seed(scenario.seed)
    rng = streams(scenario.seed)
    network = build_network(scenario, rng["topology"])
    weights = initial_weights(network, scenario.network.init_gain, rng["init"], scenario.network.skip_gain)
    model = (Relaxed(network, weights, scenario.ep.free_steps, scenario.ep.omega) if relaxed
             else FeedForward(network, weights))
    t = scenario.train
    groups = [{"params": [p], "lr": lr} for p, lr in zip(model.params, block_rates(network, t.lr))]
    opt = torch.optim.SGD(groups, momentum=t.momentum, nesterov=t.nesterov, weight_decay=t.weight_decay)
    mse = network.readout == "state"
    x_train = torch.from_numpy(np.asarray(data.x_train, np.float32))
    y_train = torch.from_numpy(np.asarray(data.y_train))
    x_test = torch.from_numpy(np.asarray(data.x_test, np.float32))
    y_test = np.asarray(data.y_test)
    bs = scenario.data.batch_size
    history, t0 = [], time.perf_counter()

    soft = (None if mse or not scenario.ep.distill.logits else
            torch.from_numpy(distill_targets(scenario.ep.distill, data)))

    def loss_of(outs, idx):
        """The loss EP follows: MSE on the last layer, or the main readout's cross-entropy plus ``ep.aux_weight``
        times each auxiliary readout's, against the one-hot labels or the distillation's soft targets."""
        y = y_train[idx]
        if mse:  # 0.5 |s_L - onehot|^2 per sample, batch mean: the nudge's cost
            target = torch.nn.functional.one_hot(y, outs[0].shape[1]).to(outs[0].dtype)
            return 0.5 * ((outs[0] - target) ** 2).sum(1).mean()
        target = y if soft is None else soft[idx]
        ce = [torch.nn.functional.cross_entropy(out, target) for out in outs]
        return ce[0] + scenario.ep.aux_weight * sum(ce[1:])

    caps = (None if t.spectral_cap is None else
            [t.spectral_cap * top_singular(p.detach().numpy()[: len(p) - e.bias])[0]
             for e, p in zip(network.state_edges, model.params)])
    base = [g["lr"] for g in opt.param_groups]
    batches = 0  # over the whole run, for the warm-up
    for epoch in range(1, t.epochs + 1):
        order = torch.from_numpy(rng["order"].permutation(len(x_train)))
        correct = 0
        for start in tqdm(range(0, len(order), bs), desc=f"BP twin epoch {epoch}/{t.epochs}", leave=False,
                          disable=not progress, unit="batch"):
            idx = order[start: start + bs]
            x = x_train[idx]
            if scenario.data.shift or scenario.data.flip:  # the EP run's augmented images, draw for draw
                x = torch.from_numpy(augmented(scenario.data, x.numpy(), rng["augment"]))
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * lr_factor(t, epoch, batches)
            batches += 1
            outs = model.outputs(x)
            out = outs[0]
            loss = loss_of(outs, idx)
            opt.zero_grad()
            loss.backward()
            if t.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.params, t.clip_norm)
            # as the EP write-back (Trainer._direction and _write), on numpy views of the torch tensors
            for k, (e, p) in enumerate(zip(network.edges, model.params)):
                G, W = p.grad.numpy(), p.detach().numpy()
                if t.relative_steps:
                    G[:] = relative_step(G, W, None, e.bias)
                if t.keep_norm and k < len(network.state_edges):
                    G[:] = tangential(G, W, e.bias)
                G[:] = bias_scaled(G, e.bias, t.bias_lr)
            opt.step()
            for e, p, cap in zip(network.state_edges, model.params, caps or []):
                W = p.detach().numpy()
                excess = spectral_excess(W, cap, e.bias, t.spectral_cap_pairs)
                if excess is not None:
                    W += excess.astype(W.dtype)
            correct += int((out.argmax(1) == y_train[idx]).sum())
            if on_batch is not None:
                on_batch(epoch, start // bs + 1, correct,
                         lambda x: _outputs(model, torch.from_numpy(np.asarray(x, np.float32))).argmax(1))
        pred = _outputs(model, x_test).argmax(1)
        row = {"epoch": epoch, "train_accuracy": correct / len(x_train),
               "test_accuracy": float((pred == y_test).mean()), "seconds": time.perf_counter() - t0}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    result = {"history": history, "test_accuracy": history[-1]["test_accuracy"],
              "train_accuracy": history[-1]["train_accuracy"], "wall_seconds": time.perf_counter() - t0,
              "weights": [p.detach().numpy().copy() for p in model.params]}
    if train_logits:
        result["train_logits"] = _outputs(model, x_train).astype(np.float32)
    return result


def _outputs(model: FeedForward, x, chunk: int = 1000) -> np.ndarray:
    """The model's outputs for every row of ``x`` (a torch tensor), without gradients, in chunks."""
    torch = _torch()
    with torch.no_grad():
        return np.concatenate([model.forward(x[i: i + chunk]).numpy() for i in range(0, len(x), chunk)])
