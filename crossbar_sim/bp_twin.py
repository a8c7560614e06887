"""The backprop twin: a scenario's network as a feedforward torch network, trained with backpropagation.

The seeds report "EP against BP" on the same architecture. The twin takes the scenario's connection graph
(:class:`networks.graph.Network`) and runs it once from input to output: each state layer is the activation of
everything its blocks from lower layers bring (dense or convolutional, max-pooled where the block pools, biases
included), the feedback of the Hopfield dynamics left out. The readout is the same: the last state layer with the
squared error (MSE), or the softmax readout with cross-entropy. Training uses the scenario's batches, epochs,
per-block learning rates and their schedule, gradient-norm clipping, momentum and weight decay (plain SGD; the
rates are per sample means, as in EP), its initial weights (the same seed) and its data order stream, in float32 on the CPU.
``train.free_coupling_cap`` is not applied: it holds the energy model's equilibrium a minimum, and the twin has none.

torch is only in the ``test`` extra, so this module imports it on use.
"""
from __future__ import annotations

import time

import numpy as np

from crossbar_sim.config import Scenario
from crossbar_sim.data import Dataset
from crossbar_sim.trainer import (augmented, bias_scaled, block_rates, build_network, initial_weights, lr_factor,
                                  relative_step, spectral_excess, streams, tangential, top_singular)
from networks.graph import Network


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a test/reference extra
        raise SystemExit("the BP twin needs torch: pip install -e \".[test]\"") from None
    return torch


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
        F = self.torch.nn.functional
        hi = self.network.activation.bound
        n_src = W.shape[0] - e.bias
        bias = hi * W[-1] if e.bias else None
        if e.conv is None:
            out = s @ W[:n_src]
            return out if bias is None else out + bias
        g = e.conv
        kernel = W[:n_src].T.reshape(-1, g.C, g.k, g.k)
        out = F.conv2d(s.reshape(len(s), g.C, g.H, g.W), kernel, bias, stride=g.stride, padding=g.pad)
        if g.pool > 1:
            out = F.max_pool2d(out, g.pool)
        return out.reshape(len(s), -1)

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
        """Outputs for a batch ``x`` (torch float32): the last state layer (MSE) or the readout's logits."""
        Ws = self._masked()
        top = self.layers(x, Ws)[-1]
        if self.network.readout == "state":
            return top
        return self._block(self.network.edges[-1], Ws[-1], top)


def train_bp(scenario: Scenario, data: Dataset, progress: bool = True, on_epoch=None,
             train_logits: bool = False) -> dict:
    """Train the scenario's network with backprop; returns ``{"history": [...], "test_accuracy", ...,
    "weights"}``, the last the trained blocks as float32 arrays in the network's edge order (bias row last).

    ``on_epoch(row)`` is called after each epoch with ``epoch``, ``train_accuracy`` (running, during the
    epoch), ``test_accuracy`` and ``seconds``. With ``train_logits`` (a softmax readout only) the result also
    holds ``"train_logits"``: the trained twin's logits of every training image, unaugmented, in the data set's
    order, shape (training samples, classes), float32: a teacher for ``ep.distill.logits``.
    """
    from tqdm import tqdm

    if data.regression:
        raise ValueError(f"the BP twin scores classification; {data.name} is a regression set")
    if train_logits and scenario.ep.loss != "cross_entropy":
        raise ValueError("teacher logits come from a softmax readout: set ep.loss=cross_entropy")
    torch = _torch()
    torch.manual_seed(scenario.seed)
    rng = streams(scenario.seed)
    network = build_network(scenario, rng["topology"])
    model = FeedForward(network, initial_weights(network, scenario.network.init_gain, rng["init"],
                                                 scenario.network.skip_gain))
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

    def loss_of(out, y):
        if mse:  # 0.5 |s_L - onehot|^2 per sample, batch mean: the nudge's cost
            target = torch.nn.functional.one_hot(y, out.shape[1]).to(out.dtype)
            return 0.5 * ((out - target) ** 2).sum(1).mean()
        return torch.nn.functional.cross_entropy(out, y)

    caps = (None if t.spectral_cap is None else
            [t.spectral_cap * top_singular(p.detach().numpy()[: len(p) - e.bias])[0]
             for e, p in zip(network.state_edges, model.params)])
    base = [g["lr"] for g in opt.param_groups]
    for epoch in range(1, t.epochs + 1):
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * lr_factor(t, epoch)
        order = torch.from_numpy(rng["order"].permutation(len(x_train)))
        correct = 0
        for start in tqdm(range(0, len(order), bs), desc=f"BP twin epoch {epoch}/{t.epochs}", leave=False,
                          disable=not progress, unit="batch"):
            idx = order[start: start + bs]
            x = x_train[idx]
            if scenario.data.shift or scenario.data.flip:  # the EP run's augmented images, draw for draw
                x = torch.from_numpy(augmented(scenario.data, x.numpy(), rng["augment"]))
            out = model.forward(x)
            loss = loss_of(out, y_train[idx])
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
                excess = spectral_excess(W, cap, e.bias)
                if excess is not None:
                    W += excess.astype(W.dtype)
            correct += int((out.argmax(1) == y_train[idx]).sum())
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
