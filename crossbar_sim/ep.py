"""Equilibrium Propagation: phases of one batch and the local weight update they give.

With ``g_m(s) = [s_{m-1}, x_max]^T s_m / B`` (the derivative of -E with respect to matrix m and its bias row,
batch mean), the EP estimate of the negative loss gradient is

* one-sided: ``(g(s^beta) - g(s^0)) / beta``;
* random sign: the same with beta's sign drawn per batch (Scellier 2017, Gammell 2021);
* centered: ``(g(s^+beta) - g(s^-beta)) / (2 beta)``, both nudged phases started from s^0 (Laborieux 2021).

Each ``g_m`` needs only the two layers that matrix m joins: the rule is local. For the cross-entropy
readout V (outside the dynamics) the nudged primitive holds ``-beta CE``, so its estimate is the mean of
``-dCE/dV`` over the nudged phases.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossbar_sim import kernels as K
from crossbar_sim.engine import Engine
from networks.convolution import destination_pixels, patches, pool_max


class SimulationError(RuntimeError):
    """The relaxation went wrong (non-finite or not converging); the message names epoch, batch and phase."""


@dataclass
class BatchResult:
    outputs: np.ndarray      # free-phase outputs (B, classes), for accuracy
    free_state: np.ndarray   # (B, units) free equilibrium, per sample (for persistent particles)
    steps: dict              # phase name -> steps of its longest-running sample
    ops: np.ndarray          # engine.OPS counts of the batch: reads, conversions, devices read
    terms: list              # (coefficient, state layers): the estimate is sum of coefficient * g(layers)


def grad_difference(engine: Engine, x: np.ndarray, first: list[np.ndarray], second: list[np.ndarray],
                    scale: float = 1.0) -> list[np.ndarray]:
    """``scale * (g_e(first) - g_e(second))`` for every block e of the dynamics, as float64 (n_src + bias, n_dst).

    ``first`` and ``second`` are the state layers 1..L of two phases. Each difference is one float32 GEMM over
    the two phases stacked along the batch; from the clamped input both phases share ``x``, so there it is
    ``x^T (b1 - b2)``. A masked connection's entry is not zeroed here: the tiles ignore it.
    """
    B = x.shape[0]
    out = []
    for k, e in enumerate(engine.network.state_edges):
        if e.conv is not None:
            out.append(_conv_grad_difference(engine, e, engine.arrays[k].W_view, x, first, second, scale))
            continue
        b1, b2 = first[e.dst - 1], second[e.dst - 1]
        n_src = x.shape[1] if e.src == 0 else first[e.src - 1].shape[1]
        g = np.empty((n_src + e.bias, b1.shape[1]))
        if e.src == 0:
            g[:n_src] = x.T @ (b1 - b2)
        else:
            a = np.concatenate([first[e.src - 1], second[e.src - 1]])
            g[:n_src] = a.T @ np.concatenate([b1, -b2])
        g[:n_src] *= scale / B
        if e.bias:
            g[-1] = scale * engine.hi * (b1.mean(0, dtype=np.float64) - b2.mean(0, dtype=np.float64))
        out.append(g)
    return out


def _conv_grad_difference(engine, e, W, x, first, second, scale):
    """The same for a convolutional block: the patches of the source against the destination's pixels, summed
    over pixels (the kernel is shared by every pixel), the bias row over pixels too. A pooling block's
    destination goes back to the pixels that won their windows in each phase, found from the convolution
    recomputed with the weights as read, without read noise (the settle kernel's own winners, from noisy
    reads, are not kept past the phase)."""
    g, B = e.conv, x.shape[0]
    if e.src == 0:
        p = patches(x, g)
        a, b = p, p
    else:
        a, b = patches(first[e.src - 1], g), patches(second[e.src - 1], g)
    win1 = win2 = None
    if g.pool > 1:
        kernel = W[: g.patch]
        win1 = pool_max(a @ kernel, B, g)[1]
        win2 = win1 if e.src == 0 else pool_max(b @ kernel, B, g)[1]
    pix1 = destination_pixels(first[e.dst - 1], g, win1)
    pix2 = destination_pixels(second[e.dst - 1], g, win2)
    out = np.empty(e.shape(engine.network.sizes))
    out[: g.patch] = (np.concatenate([a, b]).T @ np.concatenate([pix1, -pix2])) * (scale / B)
    if e.bias:
        out[-1] = scale * engine.hi * (pix1.sum(0, dtype=np.float64) - pix2.sum(0, dtype=np.float64)) / B
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def readout_grad(engine: Engine, s: np.ndarray, y: np.ndarray, block: int | None = None) -> np.ndarray:
    """``-dCE/dV`` of a softmax readout at its layer's state ``s`` (the main readout, at the last state layer,
    or readout ``block``), float64 (n + 1, classes)."""
    err = y - softmax(engine.logits(s, block).astype(np.float64))
    g = np.empty((s.shape[1] + 1, y.shape[1]))
    g[:-1] = s.T.astype(np.float64) @ err / len(y)
    g[-1] = engine.hi * err.mean(0)
    return g


class EPStep:
    """Runs the phases of one batch and turns them into weight changes.

    Args:
        engine: the network on its tiles.
        ep: the ``ep:`` block of the scenario (:class:`crossbar_sim.config.EPConfig`).
    """

    def __init__(self, engine: Engine, ep):
        self.engine = engine
        self.ep = ep

    def _phase(self, name, xq, y, S, beta, steps, where):
        ep = self.ep
        dynamics = ep.nudge_dynamics if beta != 0.0 and ep.nudge_dynamics else ep.dynamics
        res = self.engine.settle(xq, y, S, beta, steps, dynamics, ep.tol, ep.eps, ep.aux_weight, ep.omega)
        if res.status == K.STATUS_NONFINITE:
            raise SimulationError(f"{where}, {name} phase: a state became NaN or inf (step {res.steps}); "
                                  "lower train.lr or check the weights")
        # Read noise keeps single units moving, so divergence is judged on the mean change, not the largest.
        if res.mean_delta > ep.fail_delta * self.engine.hi:
            raise SimulationError(f"{where}, {name} phase: the relaxation did not converge (mean state change "
                                  f"{res.mean_delta:.3g} in step {res.steps}, limit ep.fail_delta={ep.fail_delta})")
        return res

    def estimate(self, x, y, S0, rng, where="") -> tuple[list[np.ndarray], BatchResult]:
        """Free and nudged phases from the flat initial state ``S0``; returns the EP estimate per matrix.

        Returns:
            (estimate of -dL/dW per matrix, without learning rate; the batch's outputs and counters).
        """
        eng, ep = self.engine, self.ep
        B = x.shape[0]
        xq = eng.input_dac(x)
        S = S0.copy()
        free = self._phase("free", xq, y, S, 0.0, ep.free_steps, where)
        steps = {"free": free.steps}
        ops = eng.phase_ops(free, B, nudged=False)
        free_layers = [l.copy() for l in eng.layers(S, B)]
        outputs = eng.outputs(S, B)
        if ep.estimator == "centered":
            betas = [ep.beta, -ep.beta]
        elif ep.estimator == "random_sign":
            betas = [ep.beta if rng.random() < 0.5 else -ep.beta]
        else:
            betas = [ep.beta]
        nudged = []
        for beta in betas:
            Sb = S.copy()
            name = f"nudged(beta={beta:+g})"
            res = self._phase(name, xq, y, Sb, beta, ep.nudge_steps, where)
            steps[name] = res.steps
            ops = ops + eng.phase_ops(res, B, nudged=True)
            nudged.append(eng.layers(Sb, B))
        if len(betas) == 2:
            est = grad_difference(eng, x, nudged[0], nudged[1], 1 / (2 * ep.beta))
            terms = [(1 / (2 * ep.beta), nudged[0]), (-1 / (2 * ep.beta), nudged[1])]
        else:
            est = grad_difference(eng, x, nudged[0], free_layers, 1 / betas[0])
            terms = [(1 / betas[0], nudged[0]), (-1 / betas[0], free_layers)]
        if eng.loss == K.LOSS_CE:
            for i, r in enumerate(eng.readouts):
                a = eng.edges[r].src
                w = 1.0 if i == 0 else ep.aux_weight  # an auxiliary readout's loss counts aux_weight times
                est.append(w * sum(readout_grad(eng, layers[a - 1], y, r) for layers in nudged) / len(nudged))
            ops = ops + eng.readout_ops(B) + eng.readout_ops(B * len(nudged), every=True)  # prediction, updates
        result = BatchResult(outputs, np.concatenate(free_layers, axis=1), steps, ops, terms)
        return est, result
