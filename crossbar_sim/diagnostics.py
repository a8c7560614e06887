"""Per-layer learning diagnostics (Gammell et al. 2021), recorded during training.

For every adjacent block l (layers l - 1 -> l, the readout included) and batch b:

* the RMS weight correction ``r_l(b) = |dW_l(b)|_F / sqrt(connections of the block)``, with ``dW`` the EP
  estimate without the learning rate, over the block's existing connections; per epoch its mean over the
  batches, and the log-spread ``sigma = std_l log10(mean_b r_l(b))`` (how unequal the layers' learning speeds
  are; vanishing updates in deep layers make it large);
* on crossbars, the share of the intended update ``lr * dW`` that did not arrive: ``1 - sum a sign(i) / sum |i|``
  over the block's pairs and the epoch's writes, with ``i`` intended and ``a`` the change of the pair's
  read-out weight in that write (the delivered part is the change along the intended one). Deterministic
  rounding to zero pulses, a device at its bound, an absent or stuck device lose all of it; stochastic
  rounding and zero-mean write noise deliver it in expectation, so their share tends to 0. The layer-skipping
  blocks of the dynamics (small-world, ResNet skips), which are no layer's adjacent block, get one share
  together, ``lost_fraction_skip``.

Over the whole run it also accumulates the mean absolute correction of every connection, for the paper's
Figure 5 image (:func:`crossbar_sim.report.plot_corrections`).
"""
from __future__ import annotations

import copy

import numpy as np

from networks.graph import Network
from networks.small_world import log_spread


class Diagnostics:
    """Accumulates the per-layer statistics of one training run.

    Args:
        network: the topology (its adjacent blocks are the layers of the statistics).
        shapes: the stored shape of every block (bias row included).
    """

    def __init__(self, network: Network, shapes: list[tuple[int, int]]):
        self.network = network
        self.blocks = [k for k, e in enumerate(network.edges) if e.adjacent]
        self.skips = [k for k, e in enumerate(network.state_edges) if not e.adjacent]
        self.watched = set(self.blocks) | set(self.skips)  # the blocks whose writes are compared with the intent
        self.masks = [e.full_mask(network.sizes) for e in network.edges]
        self.connections = np.array([network.connections(network.edges[k]) for k in self.blocks], dtype=float)
        # per statistics block: its connections among the unit rows (bias row left out), flat float64, or None
        self.unit_masks = [None if self.masks[k] is None else
                           self.masks[k][: self.masks[k].shape[0] - network.edges[k].bias].ravel().astype(np.float64)
                           for k in self.blocks]
        self.abs_sum = [np.zeros(s) for s in shapes]
        self.batches_total = 0
        self.epochs: list[dict] = []
        self._reset_epoch()

    def _reset_epoch(self) -> None:
        nb = len(self.blocks)
        self.r_sum = np.zeros(nb)
        self.batches = 0
        self.lost_num = np.zeros(nb)
        self.lost_den = np.zeros(nb)
        self.skip_num = self.skip_den = 0.0

    def labels(self) -> list[str]:
        return [f"{self.network.edges[k].src}->{self.network.edges[k].dst}" for k in self.blocks]

    def record(self, est: list[np.ndarray]) -> None:
        """One batch's EP estimate (without learning rates), every block."""
        for k, d in enumerate(est):
            a = np.abs(d)
            self.abs_sum[k] += a  # absent connections are masked out when read (mean_abs_corrections)
            if k in self.blocks:  # the RMS over the block's connections, bias row left out
                i = self.blocks.index(k)
                units = a[: a.shape[0] - self.network.edges[k].bias].ravel()
                sq = units * units
                mask = self.unit_masks[i]
                total = sq.sum() if mask is None else np.dot(sq, mask)
                self.r_sum[i] += np.sqrt(total / self.connections[i])
        self.batches += 1
        self.batches_total += 1

    def record_write(self, k: int, intended: np.ndarray, achieved: np.ndarray) -> None:
        """What block ``k``'s write was meant to change and what its read-out weights did change."""
        if k not in self.watched:
            return
        if self.masks[k] is not None:
            intended = intended * self.masks[k]
        delivered = (achieved * np.sign(intended)).sum()
        total = np.abs(intended).sum()
        if k in self.skips:
            self.skip_num += total - delivered
            self.skip_den += total
            return
        i = self.blocks.index(k)
        self.lost_num[i] += total - delivered
        self.lost_den[i] += total

    def end_epoch(self) -> dict:
        """Close the epoch; returns its row (RMS per layer, log-spread, lost shares when writes were seen)."""
        rms = self.r_sum / max(self.batches, 1)
        row = {"rms": rms.tolist(), "log_spread": log_spread(rms) if (rms > 0).all() else float("nan")}
        if self.lost_den.any():
            # A layer with nothing to write (a zero estimate) has no share: NaN, not 0.
            row["lost_fraction"] = np.where(self.lost_den > 0, self.lost_num / np.maximum(self.lost_den, 1e-300),
                                            np.nan).tolist()
        if self.skip_den > 0:
            row["lost_fraction_skip"] = self.skip_num / self.skip_den
        self.epochs.append(row)
        self._reset_epoch()
        return row

    def mean_abs_corrections(self) -> list[np.ndarray]:
        """Mean |dW| of every connection over all batches so far, per block."""
        return [a * (1.0 if m is None else m) / max(self.batches_total, 1) for a, m in zip(self.abs_sum, self.masks)]

    def summary(self) -> dict:
        return {"layers": self.labels(), "connections": self.connections.astype(int).tolist(),
                "epochs": self.epochs}

    _EPOCH_SUMS = ("r_sum", "batches", "lost_num", "lost_den", "skip_num", "skip_den")

    def state(self) -> dict:
        """Everything so far, the sums of an epoch in progress included (a mid-epoch checkpoint)."""
        return {"abs_sum": [a.copy() for a in self.abs_sum], "batches_total": self.batches_total,
                "epochs": [dict(e) for e in self.epochs],
                "epoch_sums": {k: copy.copy(getattr(self, k)) for k in self._EPOCH_SUMS}}

    def load_state(self, state: dict) -> None:
        self.abs_sum = [a.copy() for a in state["abs_sum"]]
        self.batches_total = state["batches_total"]
        self.epochs = [dict(e) for e in state["epochs"]]
        self._reset_epoch()
        for k, v in state.get("epoch_sums", {}).items():  # absent in checkpoints written only at epoch ends
            setattr(self, k, copy.copy(v))
