"""Convolutions on tiles: the Numba kernels against torch's convolutions and against their NumPy twins."""
import numpy as np
import pytest

from crossbar_sim import conv as CV
from crossbar_sim import kernels as K
from crossbar_sim import twins as T
from crossbar_sim.conv import ConvGeometry, unroll
from tests.helpers.graph_settle import CASES
from tests.helpers.nets import lively_weights
from tests.helpers.periphery import periphery

GEOMETRIES = [ConvGeometry(1, 8, 8, 3, 1, 1), ConvGeometry(3, 9, 7, 3, 2, 1), ConvGeometry(2, 10, 10, 5, 1, 0),
              ConvGeometry(4, 6, 6, 1, 2, 0), ConvGeometry(2, 7, 7, 3, 2, 0),
              ConvGeometry(2, 8, 8, 3, 1, 0, pool=2), ConvGeometry(1, 12, 12, 5, 1, 2, pool=3)]


def _per(analog, rows=256):
    return periphery(analog=analog, dac_bits=0, adc_bits=8, adc_range=4.0, read_sigma=0.02, rows=rows, cols=rows)


def _scratch(g, co, B):
    """The reads' scratch for B samples: sample-minor image, patch columns, pixel rows, per-read scale, tile
    buffer."""
    n = B * g.pixels
    return (np.empty(g.C * g.H * g.W * B, np.float32), np.empty(g.patch * n, np.float32), np.empty(co * n, np.float32),
            np.empty(n, np.float32), np.empty(n * max(co, g.patch), np.float32))


def _forward(x, Wc, g, per, block, key=7, out=None, row0=0, B_total=None):
    """The kernel's forward read; returns (output, winners (float32; unused without pooling), counter)."""
    B, co = x.shape[0], Wc.shape[1]
    accumulate = out is not None
    out = np.empty((B, co * g.pooled), np.float32) if out is None else out
    arg = np.full(out.shape, -1, np.float32)
    WT = np.ascontiguousarray(Wc[: g.patch].T)
    ctr = CV.conv_read(x, Wc, WT, out, accumulate, *g.args(), arg, block, per, np.uint64(key), np.uint64(5), row0,
                       B if B_total is None else B_total, *_scratch(g, co, B))
    return out, arg, ctr


def _backward(y, Wk, g, per, block, key=7, arg=None):
    """The kernel's transposed read through ``Wk``, the unrolled kernel without its bias row (C k k, C_out)."""
    B = y.shape[0]
    out = np.empty((B, g.C * g.H * g.W), np.float32)
    arg = np.zeros((1, 1), np.float32) if arg is None else arg
    ctr = CV.conv_transpose_read(y, np.ascontiguousarray(Wk), out, False, *g.args(), arg, block, per, np.uint64(key),
                                 np.uint64(5), 0, B, *_scratch(g, Wk.shape[1], B))
    return out, ctr


def _data(g, co, B=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((B, g.C * g.H * g.W)).astype(np.float32)
    w = rng.normal(0, 0.3, (co, g.C, g.k, g.k)).astype(np.float32)
    b = rng.normal(0, 0.1, co).astype(np.float32)
    y = rng.random((B, co * g.pooled)).astype(np.float32)
    return x, w, b, y


@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
def test_conv_and_its_transpose_match_torch(g):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    co = 5
    x, w, b, y = _data(g, co)
    B = x.shape[0]
    got, arg, _ = _forward(x, unroll(w, b), g, _per(False), 256)
    want = F.conv2d(torch.from_numpy(x).reshape(B, g.C, g.H, g.W), torch.from_numpy(w), torch.from_numpy(b),
                    stride=g.stride, padding=g.pad)
    up = torch.from_numpy(y).reshape(B, co, g.OH // g.pool, g.OW // g.pool)
    if g.pool > 1:  # max-pool forward; the feedback goes to the winners (torch's indices)
        want, where = F.max_pool2d(want, g.pool, return_indices=True)
        up = F.max_unpool2d(up, where, g.pool, output_size=(g.OH, g.OW))
    np.testing.assert_allclose(got, want.reshape(B, -1).numpy(), rtol=1e-5, atol=1e-5)
    back, _ = _backward(y, unroll(w), g, _per(False), 256, arg=arg)
    # conv_transpose2d is the adjoint of conv2d; output_padding restores the rows a strided conv2d drops
    extra = (g.H + 2 * g.pad - g.k) % g.stride, (g.W + 2 * g.pad - g.k) % g.stride
    want_t = F.conv_transpose2d(up, torch.from_numpy(w), stride=g.stride, padding=g.pad, output_padding=extra)
    np.testing.assert_allclose(back, want_t.reshape(B, -1).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
def test_the_feedback_is_the_adjoint_of_the_forward_read(g):
    """<P(conv(x)), y> = <x, conv^T(unpool(y))> with the winners of x: the Hopfield feedback reads the same
    conductances as the forward pass."""
    x, w, _, y = _data(g, 4, seed=1)
    Wc = unroll(w)
    fwd, arg, _ = _forward(x, Wc, g, _per(False), 256)
    back, _ = _backward(y, Wc, g, _per(False), 256, arg=arg)
    lhs, rhs = float((fwd.astype(np.float64) * y).sum()), float((x.astype(np.float64) * back).sum())
    assert abs(lhs - rhs) <= 1e-5 * max(abs(lhs), 1.0)


@pytest.mark.parametrize("g", GEOMETRIES, ids=str)
@pytest.mark.parametrize("bias", [False, True])
def test_kernels_match_their_numpy_twins_through_the_periphery(g, bias):
    """Tiles smaller than the unrolled kernel, read noise and the ADC: same draws, same numbers."""
    co = 6
    x, w, b, y = _data(g, co, seed=2)
    per = _per(True, rows=7)
    Wc = unroll(w, b if bias else None)
    got, arg, ctr = _forward(x, Wc, g, per, 7)
    want, want_arg, ctr_t = T.conv_read(x, Wc, g, 7, per, np.uint64(7), np.uint64(5))
    assert ctr == ctr_t
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
    if g.pool > 1:
        np.testing.assert_array_equal(arg, want_arg)
    WT = np.ascontiguousarray(unroll(w).T)
    back, ctr = _backward(y, unroll(w), g, per, 4, arg=arg)
    want_b, ctr_t = T.conv_transpose_read(y, WT, g, 4, per, np.uint64(7), np.uint64(5), want_arg)
    assert ctr == ctr_t
    np.testing.assert_allclose(back, want_b, rtol=1e-5, atol=2e-5)
    exact, *_ = _forward(x, Wc, g, _per(False), 256)
    assert not np.allclose(got, exact, atol=1e-4)  # the periphery did act


def test_a_batch_read_in_two_parts_draws_the_same_noise_and_accumulates():
    """The settle loop reads its rows in per-thread chunks: the noise of a pixel must not depend on the split."""
    g = GEOMETRIES[1]
    x, w, b, _ = _data(g, 4, B=5, seed=3)
    per = _per(True, rows=7)
    Wc = unroll(w, b)
    whole, *_ = _forward(x, Wc, g, per, 7)
    top, *_ = _forward(x[:2], Wc, g, per, 7, row0=0, B_total=5)
    bottom, *_ = _forward(x[2:], Wc, g, per, 7, row0=2, B_total=5)
    np.testing.assert_array_equal(np.vstack([top, bottom]), whole)
    twice, *_ = _forward(x, Wc, g, per, 7, out=whole.copy())
    np.testing.assert_allclose(twice, 2 * whole, rtol=1e-6)


def test_a_kernel_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        ConvGeometry(1, 4, 4, 5)
    with pytest.raises(ValueError, match="must be >= 1"):
        ConvGeometry(1, 4, 4, 3, stride=0)


# ---- convolutional blocks in the settle loop ---------------------------------------------------------------

def _conv_net(readout="state"):
    """1x6x6 input -> conv 3x3 pad 1 -> 2x6x6 -> conv 3x3 stride 2 pad 1 -> 3x3x3 -> dense -> 4, with a learned
    1x1 stride-2 skip from the input (as in the Hopfield-ResNet) and a dense skip from layer 1 to the output."""
    from networks.activations import make_activation
    from networks.graph import Edge, Network

    g1, g2, skip = ConvGeometry(1, 6, 6, 3, 1, 1), ConvGeometry(2, 6, 6, 3, 2, 1), ConvGeometry(1, 6, 6, 1, 2, 0)
    sizes = (36, 72, 27, 4) if readout == "state" else (36, 72, 27, 5, 3)
    edges = [Edge(0, 1, True, conv=g1), Edge(1, 2, True, conv=g2), Edge(0, 2, False, conv=skip), Edge(2, 3, True),
             Edge(1, 3, False)]
    if readout != "state":
        edges.append(Edge(3, 4, True))
    net = Network(sizes, make_activation("hard_sigmoid"), readout, tuple(edges))
    return net, lively_weights(net, 0, 5)


def _pool_net(readout="state"):
    """Laborieux et al. 2021's coupling in small: 1x8x8 input -> conv 3x3 pad 1, 2x2 max-pool -> 2x4x4 ->
    conv 3x3 pad 1, 2x2 max-pool -> 3x2x2 -> dense -> 4; the second pooling block joins two state layers."""
    from networks.activations import make_activation
    from networks.graph import Edge, Network

    g1, g2 = ConvGeometry(1, 8, 8, 3, 1, 1, pool=2), ConvGeometry(2, 4, 4, 3, 1, 1, pool=2)
    sizes = (64, 32, 12, 4) if readout == "state" else (64, 32, 12, 5, 3)
    edges = [Edge(0, 1, True, conv=g1), Edge(1, 2, True, conv=g2), Edge(2, 3, True)]
    if readout != "state":
        edges.append(Edge(3, 4, True))
    net = Network(sizes, make_activation("hard_sigmoid"), readout, tuple(edges))
    return net, lively_weights(net, 1, 6)


NETS = {"conv": _conv_net, "pool": _pool_net}


def _inside_the_box(net, weights):
    """Smaller weights, so that most units sit inside the box, where the gradient is not clipped away."""
    for W, e in zip(weights, net.edges):
        W[: W.shape[0] - e.bias] *= 0.7 / 1.5
    L = net.n_state_layers
    for W, e in zip(weights, net.edges):
        if e.dst == L:  # the output's blocks: their many inputs would otherwise saturate it
            W *= 0.3
            if e.bias:
                W[-1] = 0.3
    return net, weights




@pytest.mark.parametrize("kind", NETS)
@pytest.mark.parametrize("analog", [False, True], ids=["exact", "analog"])
@pytest.mark.parametrize("dyn,loss", CASES, ids=[f"{d}-{l}" for d, l in CASES])
def test_settle_with_convolutions_matches_its_twin(dyn, loss, analog, kind):
    from tests.helpers.graph_settle import assert_settle_matches_twin

    net, weights = NETS[kind]("state" if loss == "mse" else "softmax")
    if kind == "conv":
        assert len(set(net.colors()[1:])) == 3  # the skip 1 -> 3 joins layers of one parity
    assert_settle_matches_twin(net, weights, dyn, loss, analog, B=5, steps=30, rows=7, cols=4)


@pytest.mark.parametrize("kind", NETS)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_over_relaxed_settle_with_convolutions_matches_its_twin(loss, kind):
    from tests.helpers.graph_settle import assert_settle_matches_twin

    net, weights = NETS[kind]("state" if loss == "mse" else "softmax")
    assert_settle_matches_twin(net, weights, "coordinate", loss, False, B=5, steps=30, rows=7, cols=4, omega=1.6)


@pytest.mark.parametrize("omega", [1.0, 1.7])
@pytest.mark.parametrize("kind", NETS)
def test_colour_updates_never_increase_the_energy_with_convolutions(kind, omega):
    """With max-pooling too: the pooled coupling is convex in its source, so updating the source through the
    current winners is a majorise-minimise step; over-relaxed (omega < 2) as well."""
    from crossbar_sim.engine import Engine
    from crossbar_sim.tiles import Periphery
    from device_models.ideal import Ideal

    net, weights = NETS[kind]()
    engine = Engine(net, weights, Ideal(), Periphery(), "round", np.random.default_rng(0))
    B = 6
    x = np.random.default_rng(4).random((B, net.sizes[0])).astype(np.float32)
    y = np.zeros((B, net.sizes[-1]), np.float32)
    S = np.zeros(B * engine.state_size(), np.float32)
    energies = [net.energy(x, engine.layers(S, B), engine.weights())]
    for _ in range(25):
        engine.settle(x, y, S, 0.0, 1, "coordinate", 0.0, 0.5, omega=omega)
        energies.append(net.energy(x, engine.layers(S, B), engine.weights()))
    e = np.array(energies)
    assert np.all(np.diff(e, axis=0) <= 1e-4 * (1 + np.abs(e[:-1])))
    assert np.all(e[-1] < e[0] - 1e-3)


def test_a_convolution_that_does_not_match_its_layers_is_refused():
    from networks.activations import make_activation
    from networks.graph import Edge, Network

    with pytest.raises(ValueError, match="the convolution reads 1x6x6 = 36"):
        Network((30, 72), make_activation("hard_sigmoid"), "state", (Edge(0, 1, True, conv=ConvGeometry(1, 6, 6, 3)),))


@pytest.mark.parametrize("kind", NETS)
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_centered_ep_matches_bptt_with_convolutions(loss, kind):
    """Centered EP at small beta against autograd through the same relaxation, on the conv net with its
    strided conv and 1x1 skip (the Hopfield-ResNet's building blocks) and on the max-pooling net (Laborieux
    2021's)."""
    pytest.importorskip("torch")
    from crossbar_sim.config import EPConfig
    from crossbar_sim.engine import Engine
    from crossbar_sim.ep import EPStep
    from crossbar_sim.tiles import Periphery
    from device_models.ideal import Ideal
    from tests.helpers.bptt import bptt_gradient

    net, weights = _inside_the_box(*NETS[kind]("state" if loss == "mse" else "softmax"))
    g = np.random.default_rng(3)
    B = 12
    x = g.random((B, net.sizes[0])).astype(np.float32)
    y = np.eye(net.sizes[-1], dtype=np.float32)[g.integers(0, net.sizes[-1], B)]
    engine = Engine(net, weights, Ideal(), Periphery(), "round", np.random.default_rng(0))
    ep = EPConfig(estimator="centered", beta=0.01, dynamics="coordinate", free_steps=200, nudge_steps=200, tol=0.0)
    est, _ = EPStep(engine, ep).estimate(x, y, np.zeros(B * engine.state_size(), np.float32), np.random.default_rng(0))
    edges = [(e.src, e.dst, int(e.bias), e.conv) for e in net.edges]
    ref = bptt_gradient(x, y, weights, net.n_state_layers, loss, 200, edges=edges, colors=list(net.colors()))
    a = np.concatenate([e.ravel() for e in est])
    b = np.concatenate([r.ravel() for r in ref])
    assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) >= 0.99
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 0.1


def test_a_convolutional_block_learns_on_devices():
    """The unrolled kernel is a device array like any other: the EP step is written back as pulses."""
    from crossbar_sim.config import EPConfig
    from crossbar_sim.engine import Engine
    from crossbar_sim.ep import EPStep
    from crossbar_sim.tiles import Periphery
    from device_models.linear_step import LinearStep

    net, weights = _inside_the_box(*_conv_net())
    model = LinearStep(bits=8)
    engine = Engine(net, weights, model, Periphery(), "stochastic", np.random.default_rng(0))
    g = np.random.default_rng(2)
    x = g.random((8, net.sizes[0])).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[np.arange(8) % 4]
    est, _ = EPStep(engine, EPConfig(beta=0.5, free_steps=20, nudge_steps=8)).estimate(
        x, y, np.zeros(8 * engine.state_size(), np.float32), np.random.default_rng(1))
    before = [a.W_view.copy() for a in engine.arrays]
    for a, d in zip(engine.arrays, est):
        a.apply(0.5 * d, np.random.default_rng(3))
    moved = [float(np.abs(a.W_view - b).max()) for a, b in zip(engine.arrays, before)]
    assert engine.pulses > 0 and all(m > 0 for m in moved[:3])  # both convolutions and the 1x1 skip


# ---- the Hopfield-ResNet ------------------------------------------------------------------------------------

def test_the_resnet_has_the_papers_thirteen_weight_tensors_and_needs_three_colours():
    from networks.activations import make_activation
    from networks.resnet import hopfield_resnet

    net = hopfield_resnet((1, 28, 28), [16, 32, 64, 64], 10, make_activation("relu6"))
    assert len(net.edges) == 13
    assert net.sizes == (784, 16 * 784, 16 * 196, 32 * 196, 32 * 49, 64 * 49, 64 * 16, 64 * 16, 64 * 4, 10)
    assert len(set(net.colors()[1:])) == 3
    plain = hopfield_resnet((1, 28, 28), [16, 32, 64, 64], 10, make_activation("relu6"), skips=False)
    assert len(plain.edges) == 9 and len(set(plain.colors()[1:])) == 2


def test_centered_ep_matches_bptt_on_a_tiny_resnet():
    pytest.importorskip("torch")
    from crossbar_sim.config import EPConfig
    from crossbar_sim.engine import Engine
    from crossbar_sim.ep import EPStep
    from crossbar_sim.tiles import Periphery
    from device_models.ideal import Ideal
    from networks.activations import make_activation
    from networks.resnet import hopfield_resnet
    from tests.helpers.bptt import bptt_gradient

    net = hopfield_resnet((1, 6, 6), [2, 3], 4, make_activation("relu6"))
    g = np.random.default_rng(0)
    weights = net.init_weights(g)
    for W, e in zip(weights, net.edges):  # with states up to 6, Glorot weights drive most units into a bound
        W[: W.shape[0] - e.bias] *= 0.3
        if e.bias:
            W[-1] = g.uniform(0.0, 0.5, W.shape[1])
    B = 10
    x = g.random((B, net.sizes[0])).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[g.integers(0, 4, B)]
    engine = Engine(net, weights, Ideal(), Periphery(), "round", np.random.default_rng(0))
    ep = EPConfig(estimator="centered", beta=0.01, dynamics="coordinate", free_steps=200, nudge_steps=200, tol=0.0)
    est, _ = EPStep(engine, ep).estimate(x, y, np.zeros(B * engine.state_size(), np.float32), np.random.default_rng(0))
    edges = [(e.src, e.dst, int(e.bias), e.conv) for e in net.edges]
    ref = bptt_gradient(x, y, weights, net.n_state_layers, "mse", 200, hi=6.0, edges=edges, colors=list(net.colors()))
    for e, a, b in zip(net.edges, est, ref):
        a, b = a.ravel(), b.ravel()
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) >= 0.99, (e.src, e.dst)


def test_a_resnet_scenario_runs_end_to_end(tmp_path):
    import json

    from crossbar_sim.cli import main

    out = tmp_path / "resnet"
    code = main(["run", "scenarios/quickstart.yaml", "--out", str(out), "--quiet", "--set", "network.kind=hopfield_resnet",
                 "--set", "network.image=[1, 8, 8]", "--set", "network.channels=[2, 4]", "--set", "network.sizes=[64, 10]",
                 "--set", "train.epochs=1", "--set", "data.train_limit=64", "--set", "hardware.device.bits=8"])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["pulse_count"] > 0 and m["mvm_count"] > 0 and "test_accuracy" in m["ideal"]


@pytest.mark.parametrize("change,message", [
    ({"image": None}, "network.image: hopfield_resnet needs"),
    ({"sizes": [63, 10]}, "network.sizes: hopfield_resnet takes [inputs, classes] with inputs = 1x8x8 = 64"),
])
def test_a_bad_resnet_scenario_is_refused(change, message):
    from crossbar_sim.config import ConfigError, load_scenario

    network = {"kind": "hopfield_resnet", "image": [1, 8, 8], "sizes": [64, 10], **change}
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_scenario(raw={"network": network})


# ---- Laborieux's convolutional net --------------------------------------------------------------------------

def test_the_conv_net_pools_each_layer_down_to_the_dense_head():
    from networks.activations import make_activation
    from networks.conv_net import conv_net

    net = conv_net((1, 28, 28), [32, 64], 10, make_activation("hard_sigmoid"))
    assert net.sizes == (784, 32 * 12 * 12, 64 * 4 * 4, 10)
    assert [e.conv.pool if e.conv else None for e in net.edges] == [2, 2, None]
    assert [e.shape(net.sizes) for e in net.edges] == [(26, 32), (32 * 25 + 1, 64), (1025, 10)]
    assert list(net.colors()[1:]) == [0, 1, 0]
    vgg = conv_net((1, 28, 28), [8, 8, 16, 16, 32], 10, make_activation("hard_sigmoid"), kernel=3, padding=1,
                   pool_layers=[2, 4])
    assert vgg.sizes == (784, 8 * 784, 8 * 196, 16 * 196, 16 * 49, 32 * 49, 10)
    assert [e.conv.pool for e in vgg.edges[:-1]] == [1, 2, 1, 2, 1]
    strided = conv_net((1, 28, 28), [32, 64], 10, make_activation("hard_sigmoid"), pool=1, stride=2)
    assert strided.sizes == net.sizes  # 28 -> 12 -> 4 by stride 2 instead of pooling
    assert [(e.conv.stride, e.conv.pool) for e in strided.edges[:-1]] == [(2, 1), (2, 1)]


def test_a_conv_net_scenario_runs_end_to_end_and_a_misfit_is_refused(tmp_path):
    import json

    from crossbar_sim.cli import main
    from crossbar_sim.config import ConfigError, load_scenario
    from crossbar_sim.trainer import build_network

    out = tmp_path / "conv"
    code = main(["run", "scenarios/quickstart.yaml", "--out", str(out), "--quiet", "--set", "network.kind=conv_net",
                 "--set", "network.image=[1, 8, 8]", "--set", "network.channels=[3, 4]", "--set", "network.kernel=3",
                 "--set", "network.padding=1", "--set", "network.sizes=[64, 10]", "--set", "train.epochs=1",
                 "--set", "data.train_limit=64", "--set", "hardware.device.bits=8", "--set", "ep.loss=cross_entropy"])
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["pulse_count"] > 0 and "test_accuracy" in m["ideal"]
    network = {"kind": "conv_net", "image": [1, 8, 8], "sizes": [64, 10], "channels": [3, 4], "kernel": 3}
    strided = load_scenario(raw={"network": {**network, "stride": 2, "pool": 1}})
    net = build_network(strided, np.random.default_rng(0))
    assert net.sizes == (64, 3 * 3 * 3, 4 * 1 * 1, 10)  # 8 -> 3 -> 1 by 3x3 convolutions of stride 2
    with pytest.raises(ConfigError, match="network: convolution: its 1x1 output is not a whole number of 2x2"):
        load_scenario(raw={"network": network})


@pytest.mark.parametrize("g", [g for g in GEOMETRIES if g.pool == 1], ids=str)
def test_fold_is_the_adjoint_of_patches(g):
    """<patches(x), P> = <x, fold(P)>: col2im adds each patch entry back where im2col took it from."""
    from networks.convolution import fold, patches

    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, g.C * g.H * g.W))
    P = rng.normal(size=(2 * g.pixels, g.patch))
    lhs, rhs = float((patches(x, g) * P).sum()), float((x * fold(P, 2, g)).sum())
    assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), 1.0)


def _tiny_resnet():
    from networks.activations import make_activation
    from networks.resnet import hopfield_resnet

    net = hopfield_resnet((1, 8, 8), [2, 3], 4, make_activation("relu6"))
    W = net.init_weights(np.random.default_rng(4))
    for e, w in zip(net.edges, W):
        if e.bias:
            w[-1] = np.random.default_rng(5).normal(size=w.shape[1])  # biases must not enter the coupling
    return net, W


def _dense_coupling(net, W):
    """The coupling C as a matrix, column by column."""
    n = sum(net.sizes[1: net.n_state_layers + 1])
    return np.stack([net._flat_coupling(W, np.eye(n)[i]) for i in range(n)], axis=1)


def test_the_coupling_is_the_energys_quadratic_part_and_symmetric():
    """With the input at 0, E(s) = 1/2 s.s - 1/2 s.Cs - b.s, so E(s) - E(-s) = -2 b.s and E(s) + E(-s) = s.s - s.Cs;
    and <u, Cv> = <Cu, v>."""
    net, W = _tiny_resnet()
    sizes = net.sizes[1: net.n_state_layers + 1]
    rng = np.random.default_rng(6)
    u, v = ([rng.normal(size=(3, n)) for n in sizes] for _ in range(2))
    x = np.zeros((3, net.sizes[0]))
    Cv, Cu = net.coupling(W, v), net.coupling(W, u)
    even = net.energy(x, v, W) + net.energy(x, [-a for a in v], W)
    quad = sum((a * a).sum(1) - (a * c).sum(1) for a, c in zip(v, Cv))
    np.testing.assert_allclose(even, quad, rtol=1e-10)
    np.testing.assert_allclose(sum((a * c).sum(1) for a, c in zip(u, Cv)),
                               sum((c * a).sum(1) for a, c in zip(v, Cu)), rtol=1e-10)


def test_the_coupling_extremes_are_its_largest_and_smallest_eigenvalues():
    net, W = _tiny_resnet()
    eig = np.linalg.eigvalsh(_dense_coupling(net, W))
    hi, lo = net.coupling_extremes(W)
    assert hi == pytest.approx(eig.max(), rel=1e-6) and lo == pytest.approx(eig.min(), rel=1e-6)


def test_the_coupling_on_free_units_is_the_principal_submatrix():
    """Units at 0 or at the bound drop out: the eigenvalue is that of C's rows and columns of the free units."""
    net, W = _tiny_resnet()
    C = _dense_coupling(net, W)
    n = len(C)
    state = np.random.default_rng(7).uniform(-2.0, 8.0, n)  # about 20% at 0, 20% at the bound 6
    free = (state > 0) & (state < 6)
    share, top = net.free_coupling_max(W, state)
    assert share == free.mean() and 0 < share < 1
    assert top == pytest.approx(np.linalg.eigvalsh(C[np.ix_(free, free)]).max(), rel=1e-6)
    assert net.free_coupling_max(W, np.zeros(n)) == (0.0, 0.0)


def test_a_pooling_coupling_is_refused():
    from networks.activations import make_activation
    from networks.conv_net import conv_net

    net = conv_net((1, 14, 14), [2, 3], 4, make_activation("hard_sigmoid"), kernel=3, pool=2)
    W = net.init_weights(np.random.default_rng(0))
    with pytest.raises(ValueError, match="max-pools"):
        net.coupling(W, [np.zeros((1, n)) for n in net.sizes[1: net.n_state_layers + 1]])
