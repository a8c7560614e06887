"""A network on tiles, translated once into the settle kernel's arrays.

:class:`Engine` owns the flat read-out buffers that every tile writes into, the layout offsets and the
scratch space; :meth:`Engine.settle` runs one phase with one compiled call.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossbar_sim import blas
from crossbar_sim import kernels as K
from crossbar_sim.rng import new_key
from crossbar_sim.tiles import CrossbarArray, IdealArray, Periphery, Programming
from device_models.base import DeviceModel
from networks.convolution import N_CONV
from networks.graph import Network


OPS = ("mvm", "dac", "adc", "cell_reads")  # what the operation counts of a run hold, in this order

# The settle loop relaxes the batch in row blocks spread over the threads. The partition must not depend on the
# thread count: BLAS sums a row of a product in an order that depends on how many rows the call holds, so other
# blocks give float-rounding differences, which the relaxation and the run then amplify (measured: 84.29% against
# 83.19% after one epoch of the strided conv net, two threads against one). The blocks are a power of two in
# number, so that 1, 2, 4, ... threads share them evenly. Two at least, so that a training batch of 50 uses the
# 2 cores this project runs on (on one thread those two blocks of 25 rows cost 30 steps of a 784-500-10 net
# 14-15% more than one block of 50, and eight blocks of 6-7 rows about twice as much: benchmarks/settle_blocks.py,
# results/settle_blocks*.txt), then about one per BLOCK_ROWS rows, where a dense product still pays for its call,
# up to MAX_BLOCKS: an evaluation batch of 500 is eight blocks. Threads beyond the blocks stay idle.
BLOCK_ROWS = 50
MAX_BLOCKS = 16


def settle_chunks(batch: int) -> int:
    """Row blocks of a settle call for ``batch`` samples: a function of the batch size only."""
    chunks = 2
    while 2 * chunks <= min(MAX_BLOCKS, batch // BLOCK_ROWS):
        chunks *= 2
    return min(chunks, batch)


@dataclass
class PhaseResult:
    steps: int         # steps of the longest-running sample
    sample_steps: int  # steps summed over the samples (each stops on its own at the tolerance)
    delta: float       # largest |state change| in a sample's last step
    mean_delta: float  # mean |state change| in the samples' last steps
    status: int


class Engine:
    """The relaxation machinery of one network on one kind of device.

    Args:
        network: topology and activation.
        weights0: initial weights, one (n_in + 1, n_out) array per matrix, bias row last.
        model: device model of every tile (``ideal`` gives exact float tiles and exact periphery).
        periphery: tile size and converters.
        rounding: pulse-count rounding of the write-back.
        rng: generator for device sampling and noise keys.
        program: how the initial weights are written onto the devices.
        bl: slots of the stochastic pulse streams (``pulse_trains`` update).
    """

    def __init__(self, network: Network, weights0, model: DeviceModel, periphery: Periphery,
                 rounding: str, rng: np.random.Generator, program: Programming | None = None, bl: int = 31):
        self.network = network
        self.model = model
        self.hi = network.activation.bound
        self._phase_counts = None  # see _phase_read_ops
        self.n = np.asarray(network.sizes, dtype=np.int64)
        self.L = network.n_state_layers
        self.edges = network.edges
        self.loss = K.LOSS_MSE if network.readout == "state" else K.LOSS_CE
        self.per = periphery.vector(model, self.hi)
        self.periphery = periphery
        shapes = [e.shape(network.sizes) for e in self.edges]
        self.edge_table = np.zeros((len(self.edges), K.N_EDGE), dtype=np.int64)
        geometries = []
        wsize = wtsize = 0
        for k, (e, (r, c)) in enumerate(zip(self.edges, shapes)):
            conv = -1
            if e.conv is not None:
                conv = len(geometries)
                geometries.append(e.conv.args())
            self.edge_table[k] = (e.src, e.dst, wsize, wtsize, e.bias, conv)
            wsize += r * c
            wtsize += (r - e.bias) * c
        self.conv_table = np.array(geometries, dtype=np.int64).reshape(-1, N_CONV)
        # Blocks between two state layers, per layer, in block order: what the kernel reads for that layer.
        inner = [[k for k, e in enumerate(network.state_edges) if e.src >= 1 and l in (e.src, e.dst)]
                 for l in range(self.L + 1)]
        self.adj_ptr = np.cumsum([0, 0] + [len(inner[l]) for l in range(1, self.L + 1)]).astype(np.int64)
        self.adj = np.array([k for l in range(1, self.L + 1) for k in inner[l]], dtype=np.int64)
        self.color = network.colors()
        self.Wf = np.zeros(wsize, dtype=np.float32)
        self.WTf = np.zeros(wtsize, dtype=np.float32)
        self.arrays = []
        for (src, dst, wo, wto, bias, _), e, (r, c), W0 in zip(self.edge_table, self.edges, shapes, weights0,
                                                              strict=True):
            W_view = self.Wf[wo: wo + r * c].reshape(r, c)
            WT_view = self.WTf[wto: wto + (r - bias) * c].reshape(c, r - bias)
            mask = e.full_mask(network.sizes)
            if model.ideal:
                self.arrays.append(IdealArray(W0, W_view, WT_view, mask))
            else:
                self.arrays.append(CrossbarArray(W0, model, periphery, rng, W_view, WT_view, rounding, program, bl,
                                                 mask))
        self._work: dict[int, np.ndarray] = {}
        self.now = 0.0
        self.rng = rng

    # ---- layout ------------------------------------------------------------------------------------

    def state_offsets(self, batch: int) -> np.ndarray:
        soff = np.zeros(self.L + 1, dtype=np.int64)
        for l in range(1, self.L):
            soff[l + 1] = soff[l] + batch * self.n[l]
        return soff

    def state_size(self) -> int:
        """Units per sample over all state layers."""
        return int(self.n[1: self.L + 1].sum())

    def layers(self, S: np.ndarray, batch: int) -> list[np.ndarray]:
        """Views (B, n_l) of the state layers 1..L in the flat state ``S``."""
        soff = self.state_offsets(batch)
        return [S[soff[l]: soff[l] + batch * self.n[l]].reshape(batch, self.n[l]) for l in range(1, self.L + 1)]

    def to_flat(self, per_sample: np.ndarray) -> np.ndarray:
        """(B, sum n_l) states, one row per sample, to the kernel's flat layer-major layout."""
        out, start = [], 0
        for l in range(1, self.L + 1):
            out.append(per_sample[:, start: start + self.n[l]].ravel())
            start += self.n[l]
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    @property
    def analog(self) -> bool:
        return self.per[K.PER_ANALOG] != 0.0

    def input_dac(self, x: np.ndarray) -> np.ndarray:
        """The clamped input as the tiles see it (through the DAC), float32."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not self.analog:
            return x
        xq = np.empty_like(x)
        K.dac(x.ravel(), xq.ravel(), self.per[K.PER_DAC_STEPS], 0.0, self.hi)
        return xq

    # ---- phases ------------------------------------------------------------------------------------

    def settle(self, xq, y, S, beta, steps, dynamics, tol, eps, aux_weight=1.0, omega=1.0) -> PhaseResult:
        """Relax the flat state ``S`` in place for one phase (``beta`` = 0 is the free phase); an auxiliary
        readout's nudge is ``aux_weight`` times the main readout's; ``omega`` over-relaxes the coordinate
        dynamics (``kernels.CFG_OMEGA``)."""
        B = xq.shape[0]
        chunks = settle_chunks(B)
        work = self._work.get((B, chunks))
        if work is None:
            work = self._work[(B, chunks)] = np.zeros(K.work_size(B, list(self.n), chunks, self.edge_table,
                                                                  self.conv_table), dtype=np.float32)
        Q = np.empty_like(S) if self.analog else S
        cfg = np.array([K.DYNAMICS[dynamics], self.loss, steps, beta, eps, self.hi, tol, aux_weight, omega],
                       dtype=np.float64)
        with blas.limit_threads(1):
            kernel = K.settle if len(self.conv_table) else K.settle_dense
            out = kernel(xq, y, S, Q, self.Wf, self.WTf, self.n, self.state_offsets(B), self.edge_table,
                         self.conv_table, self.adj_ptr, self.adj, self.color, cfg, self.per, new_key(self.rng),
                         np.uint64(0), work, chunks)
        return PhaseResult(*out)

    @property
    def readouts(self) -> list[int]:
        """Block indices of the softmax readouts: the main one (from L) first, then the auxiliary ones."""
        first = len(self.network.state_edges)
        return list(range(first, len(self.edges)))

    def logits(self, s: np.ndarray, block: int | None = None) -> np.ndarray:
        """A cross-entropy readout through its tile, (B, classes) float32: the main one from the last state
        layer ``s``, or readout ``block`` from its layer."""
        B = s.shape[0]
        x = self.input_dac(s)
        out = np.empty((B, int(self.n[-1])), dtype=np.float32)
        xb = np.empty(B, dtype=np.float32)
        yb = np.empty(B * int(self.n.max()), dtype=np.float32)
        V = self.arrays[self.readouts[0] if block is None else block].W_view
        K.mvm(x, V, out, False, self.periphery.rows, self.per, new_key(self.rng), np.uint64(0), 0, B, xb, yb)
        return out

    def outputs(self, S: np.ndarray, batch: int) -> np.ndarray:
        """What the prediction is read from: the output layer (MSE) or the readout logits (CE)."""
        last = self.layers(S, batch)[-1]
        return last if self.loss == K.LOSS_MSE else self.logits(last)

    def read_ops(self, k: int, transposed: bool) -> np.ndarray:
        """What one read of block ``k`` costs, as ``OPS`` counts: one matrix-vector product, its DAC and ADC
        conversions and the devices it reads.

        The block, bias row included, is split into a grid of tiles; each tile converts its own inputs and
        digitises its own partial sums. A forward read drives the ``n_src (+ 1)`` rows (the bias line too)
        and digitises ``n_dst`` columns in every row tile; a transposed read drives the ``n_dst`` columns and
        digitises the ``n_src`` unit rows in every column tile. Every read senses both devices of each pair
        it spans that exists (a masked connection is no device). A convolution reads its unrolled kernel once
        per output pixel.
        """
        e = self.edges[k]
        rows, cols = e.shape(self.network.sizes)
        row_tiles = -(-rows // self.periphery.rows)
        col_tiles = -(-cols // self.periphery.cols)
        units = rows - e.bias
        pairs = self.network.connections(e)
        reads = 1 if e.conv is None else e.conv.pixels
        if transposed:
            return reads * np.array([1, cols * row_tiles, units * col_tiles, 2 * pairs], dtype=np.int64)
        return reads * np.array([1, rows * col_tiles, cols * row_tiles, 2 * (pairs + e.bias * cols)], dtype=np.int64)

    def phase_ops(self, res: PhaseResult, batch: int, nudged: bool) -> np.ndarray:
        """``OPS`` counts of one phase: the clamped input's blocks (and pooling blocks) read once per sample,
        then, for every step each sample took (a converged sample stops reading), every block between state
        layers read forward and transposed, and in a nudged cross-entropy phase the readouts both ways for the
        nudging forces."""
        clamped, per_step, readout = self._phase_read_ops()
        if self.loss == K.LOSS_CE and nudged:
            per_step = per_step + readout
        return batch * clamped + res.sample_steps * per_step

    def _phase_read_ops(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per sample: the clamped input's reads, one step's reads, and the readout's both ways (the geometry
        does not change, so they are counted once)."""
        if self._phase_counts is None:
            clamped = np.zeros(len(OPS), dtype=np.int64)
            per_step = np.zeros(len(OPS), dtype=np.int64)
            for k, e in enumerate(self.network.state_edges):
                if e.src == 0:
                    clamped += self.read_ops(k, False)
                else:
                    per_step += self.read_ops(k, False) + self.read_ops(k, True)
                    if e.conv is not None and e.conv.pool > 1:  # its winners are read at the phase's start too
                        clamped += self.read_ops(k, False)
            readout = np.zeros(len(OPS), dtype=np.int64)
            for r in self.readouts:
                readout += self.read_ops(r, False) + self.read_ops(r, True)
            self._phase_counts = (clamped, per_step, readout)
        return self._phase_counts

    def readout_ops(self, batch: int, every: bool = False) -> np.ndarray:
        """``OPS`` counts of reading the cross-entropy readout's logits for ``batch`` samples (none for MSE);
        with ``every``, the auxiliary readouts' too."""
        out = np.zeros(len(OPS), dtype=np.int64)
        for r in self.readouts[: None if every else 1]:
            out += batch * self.read_ops(r, False)
        return out

    def advance(self, now: float) -> None:
        """Set the chip's clock to ``now`` (s since the weights were programmed)."""
        self.now = now
        for a in self.arrays:
            a.advance(now)

    @property
    def pulses(self) -> int:
        return sum(a.pulses_total for a in self.arrays)

    @property
    def max_device_pulses(self) -> int:
        return max(a.max_device_pulses for a in self.arrays)

    def programming(self) -> dict:
        """How the initial weights were written: method, pulses, residual error (summed over the arrays)."""
        reports = [a.programming for a in self.arrays if getattr(a, "programming", None)]
        if not reports:
            return {"method": "exact"}
        sizes = np.array([a.W_view.size for a in self.arrays], dtype=float)
        rms = np.sqrt(sum(r["residual_rms"] ** 2 * n for r, n in zip(reports, sizes)) / sizes.sum())
        out = {"method": reports[0]["method"], "residual_rms": float(rms),
               "within_one_step": float(sum(r["within_one_step"] * n for r, n in zip(reports, sizes)) / sizes.sum())}
        if "pulses" in reports[0]:
            out["pulses"] = int(sum(r["pulses"] for r in reports))
            out["rounds"] = int(max(r["rounds"] for r in reports))
        return out

    def state(self) -> dict:
        """The chip's state for a checkpoint: every array's devices and the clock."""
        return {"now": self.now, "arrays": [a.state() for a in self.arrays]}

    def load_state(self, state: dict) -> None:
        self.now = state["now"]
        for a, s in zip(self.arrays, state["arrays"], strict=True):
            a.load_state(s)

    def weights(self) -> list[np.ndarray]:
        return [a.weights() for a in self.arrays]
