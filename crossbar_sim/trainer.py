"""The training loop: epochs of EP batches on one engine, with evaluation and history.

A Python driver owns the loop, allocation, progress and logging; each phase is one kernel call.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crossbar_sim import blas
from crossbar_sim.augment import augment
from crossbar_sim.config import ConfigError, Scenario
from crossbar_sim.costs import energy_j
from crossbar_sim.data import IMAGE_SHAPES, Dataset
from crossbar_sim.diagnostics import Diagnostics
from crossbar_sim.engine import OPS, Engine
from crossbar_sim.ep import EPStep, SimulationError
from crossbar_sim.tiles import Periphery, Programming
from device_models.base import DeviceModel
from networks.activations import make_activation
from networks.conv_net import conv_net
from networks.graph import Network, with_aux_readouts
from networks.layered import LayeredNetwork
from networks.resnet import hopfield_resnet
from networks.small_world import small_world

STREAMS = ("init", "order", "device", "ep", "write", "topology", "augment")  # append only: each keeps its numbers


def streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators for each use, all derived from the run's one seed."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def augmented(data_cfg, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The training batch ``x`` as the scenario's ``data.shift`` / ``data.flip`` augment it (as is without)."""
    if not (data_cfg.shift or data_cfg.flip):
        return x
    return augment(x, IMAGE_SHAPES[data_cfg.name], data_cfg.shift, data_cfg.flip, rng)


def build_network(scenario: Scenario, rng: np.random.Generator) -> Network:
    """The scenario's network, with its auxiliary readouts; a small-world topology is drawn from ``rng`` (the
    run's topology stream)."""
    net = scenario.network
    readout = "state" if scenario.ep.loss == "mse" else "softmax"
    activation = make_activation(net.activation, net.alpha)
    if net.kind == "small_world":
        network = small_world(tuple(net.sizes), activation, readout, net.p, rng, net.rewiring)
    elif net.kind == "hopfield_resnet":
        network = hopfield_resnet(tuple(net.image), net.channels, net.sizes[-1], activation, readout, net.skips)
    elif net.kind == "conv_net":
        network = conv_net(tuple(net.image), net.channels, net.sizes[-1], activation, readout, net.kernel,
                           net.padding, net.pool, net.pool_layers, net.stride)
    else:
        network = LayeredNetwork(tuple(net.sizes), activation, readout)
    if not net.aux:
        return network
    try:
        return with_aux_readouts(network, net.aux)
    except ValueError as exc:
        raise ConfigError(f"network.aux: {exc} (this network has state layers 1..{network.n_state_layers})") from None


def initial_weights(network: Network, gain: float, rng: np.random.Generator,
                    skip_gain: float = 1.0) -> list[np.ndarray]:
    """The network's initial weights (:meth:`networks.graph.Network.init_weights`) times ``gain``, the
    layer-skipping blocks' times ``gain * skip_gain`` (biases start at 0 either way)."""
    weights = network.init_weights(rng)
    for e, W in zip(network.edges, weights):
        g = gain if e.adjacent else gain * skip_gain
        if g != 1.0:
            W *= g
    return weights


def block_rates(network: Network, lr) -> list[float]:
    """One learning rate per block: a single rate for all, or one per layer pair (the block into each layer),
    a layer-skipping block taking the rate of the adjacent block into the same layer."""
    if not isinstance(lr, list):
        return [lr] * len(network.edges)
    return [lr[e.dst - 1] for e in network.edges]


def distill_targets(distill, data: Dataset) -> np.ndarray:
    """Per training sample, ``(1 - alpha) onehot(y) + alpha softmax(z / T)`` from the teacher's logits ``z``
    (float32, (samples, classes))."""
    path = Path(distill.logits)
    try:
        z = np.load(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"ep.distill.logits: cannot read {path} as a .npy array ({exc})") from None
    want = (len(data.x_train), data.n_classes)
    if z.shape != want:
        raise ConfigError(f"ep.distill.logits: {path} holds an array of shape {z.shape}; the training set needs "
                          f"{want} (one row of logits per training sample, in the data set's order)")
    z = z.astype(np.float64) / distill.temperature
    soft = np.exp(z - z.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    return ((1 - distill.alpha) * data.targets(data.y_train) + distill.alpha * soft).astype(np.float32)


def lr_factor(train, epoch: int, batch: int = 0) -> float:
    """The learning-rate multiplier of ``epoch`` (1-based): 1, or with ``schedule: cosine`` the cosine decay
    0.5 (1 + cos(pi (epoch - 1) / epochs)) (Elayedam & Srinivasan's schedule, stepped per epoch); times, for the
    run's ``batch``-th batch (0-based, counted over every epoch) within ``train.warmup_batches``, the linear
    warm-up (batch + 1) / warmup_batches."""
    factor = 1.0
    if train.schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / train.epochs))
    if batch < train.warmup_batches:
        factor *= (batch + 1) / train.warmup_batches
    return factor


def clip_global_norm(est: list[np.ndarray], max_norm: float | None, masks=None) -> list[np.ndarray]:
    """The batch's estimate scaled by ``min(1, max_norm / ||est||)``, the norm taken over every block together
    (torch's ``clip_grad_norm_``) and only over existing connections (``masks``: per block a boolean array of
    the stored shape, or None when dense); unchanged when ``max_norm`` is None. On a chip this is one digital
    scale factor per batch, applied to the update before it becomes pulses."""
    if max_norm is None:
        return est
    def squares(g, m):
        return float(np.dot(g.ravel(), g.ravel())) if m is None else float(np.sum(g[m].astype(np.float64) ** 2))

    norm = math.sqrt(sum(squares(g, m) for g, m in zip(est, masks or [None] * len(est))))
    if norm <= max_norm:
        return est
    scale = max_norm / norm
    return [g * np.asarray(scale, dtype=g.dtype) for g in est]


def relative_step(g: np.ndarray, W: np.ndarray, mask: np.ndarray | None = None, bias: bool = False) -> np.ndarray:
    """The block's estimate ``g`` with its weight rows scaled to the norm of the weights ``W`` there
    (``train.relative_steps``), both norms over the existing connections only (``mask`` of the stored shape, or
    None when dense). A bias row (``bias``: the last row) keeps its plain estimate, as LARS leaves biases out:
    its input is the bound, not a state, so at a small state scale its estimate would otherwise take all of the
    block's step. Zero stays zero."""
    rows = len(g) - bias

    def norm(a):
        a = a[:rows] if mask is None else a[:rows][mask[:rows]]
        return float(np.sqrt(np.sum(a.astype(np.float64) ** 2)))

    gn = norm(g)
    if gn == 0.0:
        return g
    out = g.copy()
    out[:rows] *= np.asarray(norm(W) / gn, dtype=g.dtype)
    return out


def bias_scaled(g: np.ndarray, bias: bool, factor: float) -> np.ndarray:
    """The step ``g`` with its bias row (the last, when ``bias``) times ``factor`` (``train.bias_lr``); ``g``
    itself when there is nothing to scale."""
    if not bias or factor == 1.0:
        return g
    out = g.copy()
    out[-1] *= np.asarray(factor, dtype=g.dtype)
    return out


def tangential(g: np.ndarray, W: np.ndarray, bias: bool = False) -> np.ndarray:
    """The step ``g`` less its component along the weights ``W`` (``train.keep_norm``), over the weight rows; a
    bias row (``bias``: the last row) is left as it is. Masked entries are zero in ``W`` and add nothing."""
    rows = len(g) - bias
    w = W[:rows].astype(np.float64)
    ww = float(np.sum(w * w))
    if ww == 0.0:
        return g
    out = g.copy()
    out[:rows] -= (float(np.sum(g[:rows].astype(np.float64) * w)) / ww * w).astype(g.dtype)
    return out


def top_singular(W: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The largest singular value of ``W`` and its left and right singular vectors (float64)."""
    U, S, Vt = np.linalg.svd(np.asarray(W, np.float64), full_matrices=False)
    return float(S[0]), U[:, 0], Vt[0]


def spectral_excess(W: np.ndarray, cap: float, bias: bool = False, pairs: str = "top") -> np.ndarray | None:
    """The write that brings the weight rows' largest singular value down to ``cap`` (``train.spectral_cap``),
    zero on a bias row; None when no singular value exceeds ``cap``. ``pairs`` (``train.spectral_cap_pairs``):
    "top" writes ``-(s - cap) u v^T`` along the top pair only, so a second singular value above ``cap`` is
    left (and becomes the largest); "all" writes ``-sum_i (s_i - cap) u_i v_i^T`` over every pair above it."""
    rows = len(W) - bias
    U, S, Vt = np.linalg.svd(np.asarray(W[:rows], np.float64), full_matrices=False)
    if S[0] <= cap:
        return None
    out = np.zeros(W.shape, np.float64)
    if pairs == "all":
        over = int(np.sum(S > cap))
        out[:rows] = -(U[:, :over] * (S[:over] - cap)) @ Vt[:over]
    else:
        out[:rows] = -(S[0] - cap) * np.outer(U[:, 0], Vt[0])
    return out


def half_squared_error(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per sample ``0.5 ||outputs - targets||^2``, the regression score (Gammell et al.'s cost)."""
    return 0.5 * ((outputs - targets) ** 2).sum(1)


def _zero_ops() -> np.ndarray:
    return np.zeros(len(OPS), dtype=np.int64)


COUPLING_IMAGES = 4  # train.free_coupling_cap: free states per batch whose coupling is measured


@dataclass
class Counters:
    """What a run spent: relaxation steps, and the ``OPS`` counts of training and of evaluation."""

    phases: int = 0
    steps: int = 0
    free_steps: int = 0
    free_phases: int = 0
    train_ops: np.ndarray = field(default_factory=_zero_ops)
    eval_ops: np.ndarray = field(default_factory=_zero_ops)
    train_energy_j: float = 0.0  # when hardware.energy is set
    coupling_top: float = 0.0  # train.free_coupling_cap: the last batch's eigenvalue before any scaling
    coupling_scalings: int = 0  # batches after which the cap scaled the coupling down
    history: list = field(default_factory=list)

    @property
    def mvm(self) -> int:
        """Matrix-vector products of training and evaluation together."""
        return int(self.train_ops[0] + self.eval_ops[0])


class Trainer:
    """Trains one network on one device model.

    Args:
        scenario: the validated scenario.
        dataset: the data.
        model: the device model (``ideal`` for the twin).
        label: shown on the progress bar.
    """

    def __init__(self, scenario: Scenario, dataset: Dataset, model: DeviceModel, label: str = "", progress=True):
        self._wall_offset = 0.0  # seconds spent before a resume
        self._t0 = time.perf_counter()
        self.scenario = scenario
        self.data = dataset
        self.label = label
        self.progress = progress
        self.rng = streams(scenario.seed)
        self.metric = "loss" if dataset.regression else "accuracy"  # history keys train_<metric>, test_<metric>
        self.network = build_network(scenario, self.rng["topology"])
        if self.network.sizes[0] != dataset.n_features or self.network.sizes[-1] != dataset.n_classes:
            raise ConfigError(f"network.sizes: {dataset.name} needs {dataset.n_features} inputs and "
                              f"{dataset.n_classes} outputs, got {list(self.network.sizes)}")
        hw = scenario.hardware
        t = hw.tile
        periphery = Periphery(t.rows, t.cols, t.dac_bits, t.adc_bits, t.adc_range, t.w_max)
        weights0 = initial_weights(self.network, scenario.network.init_gain, self.rng["init"],
                                   scenario.network.skip_gain)
        pr = hw.program
        self.engine = Engine(self.network, weights0, model, periphery, hw.update.rounding, self.rng["device"],
                             Programming(pr.method, pr.tolerance, pr.max_iterations), hw.update.bl)
        self.step = EPStep(self.engine, scenario.ep)
        self.lrs = block_rates(self.network, scenario.train.lr)
        self.diag = Diagnostics(self.network, [a.W_view.shape for a in self.engine.arrays])
        # train.spectral_cap: each inner block's cap, a multiple of its initial largest singular value
        cap = scenario.train.spectral_cap
        self.spectral_caps = (None if cap is None else
                              [cap * top_singular(a.W_view[: len(a.W_view) - e.bias])[0]
                               for e, a in zip(self.network.state_edges, self.engine.arrays)])
        if scenario.train.free_coupling_cap is not None and any(
                e.conv is not None and e.conv.pool > 1 for e in self.network.state_edges):
            raise ConfigError("train.free_coupling_cap: this network max-pools, and a pooling block's coupling is "
                              "not linear; use it on networks without pooling")
        # SGD momentum: one velocity per block, a digital buffer beside its array (None without momentum)
        self.velocity = ([np.zeros(a.W_view.shape) for a in self.engine.arrays]
                         if scenario.train.momentum > 0 else None)
        self.counters = Counters()
        self.eval_mean_steps = 0.0  # mean relaxation steps per sample in the last evaluate()
        self._epoch = 1  # the epoch being trained (the learning-rate schedule's position)
        self._partial = None  # an epoch in progress: its number, sample order, next batch and score so far
        n_train = len(dataset.x_train)
        self.particles = (np.zeros((n_train, self.engine.state_size()), dtype=np.float32)
                          if scenario.ep.persistent else None)
        self.soft_targets = distill_targets(scenario.ep.distill, dataset) if scenario.ep.distill.logits else None

    def wall_seconds(self) -> float:
        """Wall time of this run so far, the time before a resume included."""
        return self._wall_offset + time.perf_counter() - self._t0

    # ---- checkpoints -------------------------------------------------------------------------------

    def state(self) -> dict:
        """Everything the rest of the run depends on: devices, generators, counters, particles, history."""
        c = self.counters
        return {
            "engine": self.engine.state(),
            "rng": {name: g.bit_generator.state for name, g in self.rng.items()},
            "counters": {**c.__dict__, "train_ops": c.train_ops.copy(), "eval_ops": c.eval_ops.copy(),
                         "history": [dict(r) for r in c.history]},
            "particles": None if self.particles is None else self.particles.copy(),
            "diagnostics": self.diag.state(),
            "velocity": None if self.velocity is None else [v.copy() for v in self.velocity],
            "partial": None if self._partial is None else {**self._partial, "order": self._partial["order"].copy()},
            "wall_seconds": self.wall_seconds(),
        }

    def load_state(self, state: dict) -> None:
        """Continue from :meth:`state` of a trainer built from the same scenario and data."""
        self.engine.load_state(state["engine"])
        for name, g in self.rng.items():
            if name in state["rng"]:  # a checkpoint from before a stream was added leaves that one fresh
                g.bit_generator.state = state["rng"][name]
        self.counters = Counters(**state["counters"])
        if self.particles is not None:
            self.particles[:] = state["particles"]
        self.diag.load_state(state["diagnostics"])
        if self.velocity is not None:
            for v, saved in zip(self.velocity, state["velocity"]):
                v[:] = saved
        partial = state.get("partial")  # absent in checkpoints written only at epoch ends
        self._partial = None if partial is None else {**partial, "order": partial["order"].copy()}
        self._wall_offset = state["wall_seconds"]
        self._t0 = time.perf_counter()

    def _score(self, outputs: np.ndarray, y: np.ndarray) -> float:
        """Summed over the batch: correct predictions, or the half squared error for regression."""
        if self.data.regression:
            return float(half_squared_error(outputs, y).sum())
        return float((outputs.argmax(1) == y).sum())

    def batches_done(self) -> int | None:
        """Batches of the epoch in progress already trained (a mid-epoch checkpoint), or None at an epoch's end."""
        return None if self._partial is None else self._partial["next_batch"]

    def running_train_score(self) -> float | None:
        """The training score (accuracy, for classification) of the epoch in progress over its batches so far (a
        mid-epoch checkpoint), or None at an epoch's end."""
        done = self.batches_done()
        return None if not done else self._partial["score"] / (done * self.scenario.data.batch_size)

    def trained_to(self) -> str:
        """Where training stands, for tools that label what they measured: "after epoch N", plus "and B batches
        of the next" when a mid-epoch checkpoint was loaded (its weights are those after batch B, not epoch N's)."""
        done = self.batches_done()
        return f"after epoch {len(self.counters.history)}" + (f" and {done} batches of the next" if done else "")

    def _train_epoch(self, epoch: int, on_batch=None) -> float:
        """One epoch (or the rest of one, after a mid-epoch checkpoint); ``on_batch()`` after every batch, when
        the trainer's state is a consistent point to save."""
        sc = self.scenario
        bs = sc.data.batch_size
        p = self._partial
        if p is not None and p["epoch"] == epoch:
            order, start, score = p["order"], p["next_batch"], p["score"]
        else:
            order, start, score = self.rng["order"].permutation(len(self.data.x_train)), 0, 0.0
        n_batches = (len(order) + bs - 1) // bs
        bar = tqdm(range(start, n_batches), desc=f"{self.label} epoch {epoch}/{sc.train.epochs}", leave=False,
                   disable=not self.progress, unit="batch", initial=start, total=n_batches)
        for b in bar:
            score += self.train_batch(order[b * bs: (b + 1) * bs], epoch, f"epoch {epoch}, batch {b + 1}")[2]
            self._partial = {"epoch": epoch, "order": order, "next_batch": b + 1, "score": score}
            if on_batch:
                on_batch()
        self._partial = None
        return score / len(order)

    def train_batch(self, idx: np.ndarray, epoch: int, where: str):
        """Train on the training samples ``idx``, one batch of ``epoch`` (which sets the scheduled rate): the EP
        estimate, its write-back, the counters. Returns the estimate, the phase result and the batch's free-phase
        score (summed over its samples); errors name ``where``. BLAS runs one thread here, as in :meth:`fit`, so
        that a caller outside ``fit`` (``benchmarks/seeds/deep/batch_trace.py``) gets the run's sums, and so its
        trajectory."""
        with blas.limit_threads(1):
            return self._train_batch(idx, epoch, where)

    def _train_batch(self, idx: np.ndarray, epoch: int, where: str):
        self._epoch = epoch
        data, sc = self.data, self.scenario
        x = augmented(sc.data, data.x_train[idx], self.rng["augment"])
        y = data.targets(data.y_train[idx]) if self.soft_targets is None else self.soft_targets[idx]
        if self.particles is not None:
            S0 = self.engine.to_flat(self.particles[idx])
        else:
            S0 = np.zeros(len(idx) * self.engine.state_size(), dtype=np.float32)
        self.engine.advance(self.engine.now + sc.hardware.time.batch_seconds)
        est, res = self.step.estimate(x, y, S0, self.rng["ep"], where=where)
        self.diag.record(est)
        self._write(x, est, res)
        if not np.isfinite(self.engine.Wf).all():
            raise SimulationError(f"{where}: the update made a weight NaN or inf; "
                                  "lower train.lr or check the device model")
        if self.particles is not None:
            self.particles[idx] = res.free_state
        c = self.counters
        c.phases += len(res.steps)
        c.steps += sum(res.steps.values())
        c.free_steps += res.steps["free"]
        c.free_phases += 1
        c.train_ops += res.ops
        return est, res, self._score(res.outputs, data.y_train[idx])

    def _write(self, x, est, res) -> None:
        """Write the batch's update: counted pulses per pair, or parallel pulse trains per sample and phase."""
        trains = self.scenario.hardware.update.mode == "pulse_trains"
        inner = len(self.engine.network.state_edges)
        factor = lr_factor(self.scenario.train, self._epoch, self.counters.free_phases)  # one free phase per batch
        est = clip_global_norm(est, self.scenario.train.clip_norm, [a.mask for a in self.engine.arrays])
        for k, (array, g, lr) in enumerate(zip(self.engine.arrays, est, self.lrs)):
            lr = lr * factor
            watched = not self.engine.model.ideal and k in self.diag.watched
            before = array.W_view.copy() if watched else None  # the read-out, float32: a copy, no recomputation
            if trains and k < inner:
                e = self.engine.edges[k]
                events = []
                for coef, layers in res.terms:
                    a = x if e.src == 0 else layers[e.src - 1]
                    if e.bias:
                        a = np.concatenate([a, np.full((len(a), 1), self.engine.hi, np.float32)], axis=1)
                    events.append((coef, a, layers[e.dst - 1]))
                array.apply_trains(events, lr, self.rng["write"])
            else:  # counted pulses (the cross-entropy readout always: its gradient is no phase difference)
                g = self._direction(k, g, array)
                array.apply(lr * g, self.rng["write"])
            if watched:
                self.diag.record_write(k, lr * g, array.W_view - before)
            if self.spectral_caps is not None and k < inner:  # after the diagnostics: not a lost update
                excess = spectral_excess(array.W_view, self.spectral_caps[k], self.engine.edges[k].bias,
                                         self.scenario.train.spectral_cap_pairs)
                if excess is not None:
                    array.apply(excess, self.rng["write"])
        if self.scenario.train.free_coupling_cap is not None:
            self._hold_free_coupling(res.free_state)

    def _hold_free_coupling(self, free_state: np.ndarray) -> None:
        """``train.free_coupling_cap``: the median, over the first ``COUPLING_IMAGES`` free states, of the
        coupling's largest eigenvalue on their free units, at the weights just written; above the cap, every
        block between two state layers is written down by the factor cap / eigenvalue."""
        cap = self.scenario.train.free_coupling_cap
        net, arrays = self.network, self.engine.arrays
        weights = [a.W_view.astype(np.float64) for a in arrays]
        top = float(np.median([net.free_coupling_max(weights, s.astype(np.float64))[1]
                               for s in free_state[:COUPLING_IMAGES]]))
        self.counters.coupling_top = top
        if top <= cap * (1 + 1e-5):  # the float32 weights of a scaling just made land within rounding of the cap
            return
        self.counters.coupling_scalings += 1
        for e, array, W in zip(net.state_edges, arrays, weights):
            if e.src == 0:
                continue
            step = (cap / top - 1.0) * W
            if e.bias:
                step[-1] = 0.0
            array.apply(step, self.rng["write"])

    def _direction(self, k: int, g: np.ndarray, array) -> np.ndarray:
        """The step of block ``k`` for the EP estimate ``g``: SGD, with relative steps ``g ||W|| / ||g||``
        (:func:`relative_step`), the radial part removed (:func:`tangential`, blocks inside the dynamics),
        weight decay ``g - wd W`` (W as the array reads, bias row included) and momentum ``v = mu v + g``,
        stepping along ``v`` or, with Nesterov, ``g + mu v``."""
        t = self.scenario.train
        bias = self.engine.edges[k].bias
        if t.relative_steps:
            g = relative_step(g, array.W_view, array.mask, bias)
        if t.keep_norm and k < len(self.engine.network.state_edges):
            g = tangential(g, array.W_view, bias)
        g = bias_scaled(g, bias, t.bias_lr)
        if t.weight_decay > 0:
            g = g - t.weight_decay * array.W_view
        if self.velocity is None:
            return g
        v = self.velocity[k]
        v *= t.momentum
        v += g
        return g + t.momentum * v if t.nesterov else v

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy of the free equilibrium's prediction on (x, y); for regression, its mean half squared
        error (``self.metric`` names which). ``self.eval_mean_steps`` is left holding the mean number of
        relaxation steps a sample took."""
        eng = self.engine
        bs = self.scenario.data.eval_batch_size
        score = 0.0
        sample_steps = 0
        for start in range(0, len(x), bs):
            xb = x[start: start + bs]
            B = len(xb)
            S, res = self._free_phase(xb)
            self.counters.eval_ops += eng.phase_ops(res, B, nudged=False) + eng.readout_ops(B)
            sample_steps += res.sample_steps
            score += self._score(eng.outputs(S, B), y[start: start + bs])
        self.eval_mean_steps = sample_steps / len(x)
        return score / len(x)

    def _free_phase(self, xb: np.ndarray):
        """The free equilibrium of the batch ``xb`` from zero states: the flat state and the phase's result."""
        eng, ep = self.engine, self.scenario.ep
        S = np.zeros(len(xb) * eng.state_size(), dtype=np.float32)
        dummy = np.zeros((len(xb), self.data.n_classes), dtype=np.float32)
        res = eng.settle(eng.input_dac(xb), dummy, S, 0.0, ep.free_steps, ep.dynamics, ep.tol, ep.eps,
                         omega=ep.omega)
        return S, res

    def free_layers(self, x: np.ndarray) -> list[np.ndarray]:
        """The state layers 1..L, each (samples, units), of the free equilibrium :meth:`evaluate` reads its
        prediction from, for the samples ``x`` in one batch."""
        S, _ = self._free_phase(x)
        return [s.copy() for s in self.engine.layers(S, len(x))]

    def fit(self, on_epoch=None, on_batch=None) -> list[dict]:
        """Train up to the scenario's epochs (from where :meth:`load_state` left it: an epoch's end or a batch
        inside one); returns the per-epoch history. ``on_epoch(row)`` is called after each epoch,
        ``on_batch()`` after each batch (for mid-epoch checkpoints)."""
        with blas.limit_threads(1):  # the kernels parallelise themselves; idle BLAS threads would spin against them
            return self._fit(on_epoch, on_batch)

    def _fit(self, on_epoch, on_batch=None):
        energy = self.scenario.hardware.energy
        for epoch in range(len(self.counters.history) + 1, self.scenario.train.epochs + 1):
            train_score = self._train_epoch(epoch, on_batch)
            test_score = self.evaluate(self.data.x_test, self.data.y_test)
            c = self.counters
            row = {
                "epoch": epoch,
                f"train_{self.metric}": train_score,
                f"test_{self.metric}": test_score,
                "mean_free_steps": c.free_steps / max(c.free_phases, 1),
                "pulses": self.engine.pulses,
                "mvm": int(c.train_ops[0]),
                "seconds": self.wall_seconds(),
            }
            row["log_spread"] = self.diag.end_epoch()["log_spread"]
            if self.scenario.train.free_coupling_cap is not None:
                row["coupling_top"] = c.coupling_top
                row["coupling_scalings"] = c.coupling_scalings
            if energy.enabled:
                total = energy_j(energy, c.train_ops, self.engine.pulses)["total"]
                row["energy_j"] = total - c.train_energy_j
                c.train_energy_j = total
            c.history.append(row)
            if on_epoch:
                on_epoch(row)
        return self.counters.history
