"""The settle kernel on a whole network (a Network and its weights) against its NumPy twin."""
import numpy as np

from crossbar_sim import kernels as K
from crossbar_sim import twins
from tests.helpers.flat import pack, unpack
from tests.helpers.periphery import periphery

# every dynamics with each loss: the cases a settle-against-twin test runs
CASES = [(dyn, loss) for dyn in ("euler", "fixed_point", "coordinate") for loss in ("mse", "cross_entropy")]


def assert_settle_matches_twin(net, weights, dyn, loss, analog, B=6, steps=40, rows=5, cols=4, aux_weight=1.0,
                               omega=1.0):
    """Relax random states of ``net`` for ``steps`` steps with the kernel (two threads) and the twin; the same
    steps and the same states (to float rounding, or within the converters' quantum when analog)."""
    sizes, L = net.sizes, net.n_state_layers
    g = np.random.default_rng(1)
    x = g.random((B, sizes[0])).astype(np.float32)
    y = np.eye(sizes[-1], dtype=np.float32)[np.arange(B) % sizes[-1]]
    masked = [W * (1 if e.full_mask(sizes) is None else e.full_mask(sizes)) for W, e in zip(weights, net.edges)]
    states = [g.random((B, sizes[l])).astype(np.float32) * 0.5 for l in range(1, L + 1)]
    edges = [(e.src, e.dst, int(e.bias), e.conv) for e in net.edges]
    per = periphery(analog=analog, adc_bits=12, dac_bits=10, read_sigma=0.01, rows=rows, cols=cols)
    n, soff, S, Wf, WTf, table, conv, *rest = pack(sizes, masked, states, B, edges, net.colors(),
                                                   readout=loss != "mse")
    dyn_id, loss_id = K.DYNAMICS[dyn], K.LOSSES[loss]
    tol = 1e-7 if analog else 1e-3
    cfg = np.array([dyn_id, loss_id, steps, 0.3, 0.5, 1.0, tol, aux_weight, omega])
    xq = twins.dac(x, per[K.PER_DAC_STEPS], 0, 1) if analog else x
    Q = np.empty_like(S) if analog else S
    work = np.zeros(K.work_size(B, list(sizes), 2, table, conv), np.float32)
    got_steps, *_, status = K.settle(xq, y, S, Q, Wf, WTf, n, soff, table, conv, *rest, cfg, per, np.uint64(3),
                                     np.uint64(0), work, 2)
    ref, ref_steps, _ = twins.settle(xq, y, states, masked, dyn_id, loss_id, steps, 0.3, 0.5, 1.0, tol, per,
                                     np.uint64(3), edges, list(net.colors()), aux_weight, omega)
    assert status == K.STATUS_OK and got_steps == ref_steps
    for a, b in zip(unpack(S, sizes, L, B), ref):
        diff = np.abs(a - b)
        assert diff.max() < (1e-4 if not analog else 0.02), diff.max()
        assert np.mean(diff > 1e-4) < (1e-9 if not analog else 0.05)
