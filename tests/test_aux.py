"""Intermediate error signals (Lin, Bal & Sengupta 2025): auxiliary softmax readouts on intermediate layers,
nudging them in the relaxation and learning with EP, and distillation from a teacher's logits."""
import numpy as np
import pytest

from crossbar_sim.config import ConfigError, load_scenario
from networks.activations import make_activation
from networks.convolution import ConvGeometry
from networks.graph import Edge, Network, with_aux_readouts
from networks.layered import LayeredNetwork
from tests.helpers.graph_settle import assert_settle_matches_twin
from tests.helpers.nets import lively_weights

DYNAMICS = ("euler", "fixed_point", "coordinate")


def _pool_net_with_aux():
    """1x8x8 -> conv 3x3 pad 1, 2x2 max-pool -> 2x4x4 -> conv, pool -> 3x2x2 -> dense 5 -> softmax 3, with
    auxiliary readouts on both convolutional layers."""
    g1, g2 = ConvGeometry(1, 8, 8, 3, 1, 1, pool=2), ConvGeometry(2, 4, 4, 3, 1, 1, pool=2)
    edges = (Edge(0, 1, True, conv=g1), Edge(1, 2, True, conv=g2), Edge(2, 3, True), Edge(3, 4, True))
    net = with_aux_readouts(Network((64, 32, 12, 5, 3), make_activation("hard_sigmoid"), "softmax", edges), [1, 2])
    return net, lively_weights(net, 1, 6)


def test_aux_readouts_come_after_the_main_one_and_are_checked():
    net, _ = _pool_net_with_aux()
    assert net.aux_layers == (1, 2) and len(net.state_edges) == 3
    assert [(e.src, e.dst) for e in net.readout_edges] == [(3, 4), (1, 4), (2, 4)]
    base = LayeredNetwork((10, 8, 6, 3), make_activation("hard_sigmoid"), "softmax")
    with pytest.raises(ValueError, match="distinct intermediate layers"):
        with_aux_readouts(base, [2])  # layer 2 is L: it has the main readout
    with pytest.raises(ValueError, match="distinct intermediate layers"):
        with_aux_readouts(base, [1, 1])
    with pytest.raises(ValueError, match="need the softmax readout"):
        with_aux_readouts(LayeredNetwork((10, 8, 6, 3), make_activation("hard_sigmoid")), [1])


@pytest.mark.parametrize("analog", [False, True], ids=["exact", "analog"])
@pytest.mark.parametrize("dyn", DYNAMICS)
def test_settle_with_aux_readouts_matches_its_twin(dyn, analog):
    net, weights = _pool_net_with_aux()
    assert_settle_matches_twin(net, weights, dyn, "cross_entropy", analog, B=5, steps=30, rows=7, cols=4,
                               aux_weight=0.7)


def test_aux_readouts_push_their_layers_only_when_weighted():
    """With aux_weight 0 the nudged equilibrium is the one without auxiliary readouts; with weight > 0 the
    auxiliary layers move."""
    from crossbar_sim.engine import Engine
    from crossbar_sim.tiles import Periphery
    from device_models.ideal import Ideal

    net, weights = _pool_net_with_aux()
    plain = Network(net.sizes, net.activation, "softmax", net.edges[:4])
    B = 6
    g = np.random.default_rng(0)
    x = g.random((B, 64)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(B) % 3]
    out = {}
    for name, n, W, w in (("plain", plain, weights[:4], 1.0), ("zero", net, weights, 0.0), ("aux", net, weights, 1.0)):
        eng = Engine(n, W, Ideal(), Periphery(), "round", np.random.default_rng(0))
        S = np.zeros(B * eng.state_size(), np.float32)
        eng.settle(x, y, S, 1.0, 60, "coordinate", 0.0, 0.5, aux_weight=w)
        out[name] = eng.layers(S, B)
    for a, b in zip(out["plain"], out["zero"]):
        np.testing.assert_array_equal(a, b)
    assert np.abs(out["aux"][0] - out["plain"][0]).max() > 1e-3


def test_centered_ep_matches_bptt_with_aux_readouts():
    """The estimate, auxiliary readouts' own blocks included, is the gradient of CE + aux_weight * sum of the
    auxiliary CEs through the relaxation."""
    pytest.importorskip("torch")
    from crossbar_sim.config import EPConfig
    from crossbar_sim.engine import Engine
    from crossbar_sim.ep import EPStep
    from crossbar_sim.tiles import Periphery
    from device_models.ideal import Ideal
    from tests.helpers.bptt import bptt_gradient

    net, weights = _pool_net_with_aux()
    for W, e in zip(weights, net.edges):  # inside the box, where the gradient is not clipped away
        W[: W.shape[0] - e.bias] *= 0.7 / 1.5
        if e.dst == net.n_state_layers:
            W *= 0.3
            W[-1] = 0.3
    g = np.random.default_rng(3)
    B = 12
    x = g.random((B, 64)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[g.integers(0, 3, B)]
    engine = Engine(net, weights, Ideal(), Periphery(), "round", np.random.default_rng(0))
    ep = EPConfig(estimator="centered", beta=0.01, dynamics="coordinate", free_steps=200, nudge_steps=200, tol=0.0,
                  aux_weight=0.5)
    est, _ = EPStep(engine, ep).estimate(x, y, np.zeros(B * engine.state_size(), np.float32), np.random.default_rng(0))
    edges = [(e.src, e.dst, int(e.bias), e.conv) for e in net.edges]
    ref = bptt_gradient(x, y, weights, net.n_state_layers, "cross_entropy", 200, edges=edges,
                        colors=list(net.colors()), aux_weight=0.5)
    for e, a, b in zip(net.edges, est, ref):
        a, b = a.ravel(), b.ravel()
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) >= 0.99, (e.src, e.dst)
    assert np.linalg.norm(est[4]) > 0 and np.linalg.norm(est[5]) > 0


def test_aux_and_distillation_need_the_softmax_readout():
    with pytest.raises(ConfigError, match="network.aux: auxiliary readouts and distillation"):
        load_scenario(raw={"network": {"sizes": [64, 20, 20, 10], "aux": [1]}})
    with pytest.raises(ConfigError, match="ep.distill.logits"):
        load_scenario(raw={"ep": {"distill": {"logits": "t.npy"}}})


def test_a_run_with_aux_readouts_and_a_teacher(tmp_path):
    import json

    from crossbar_sim.cli import main

    teacher = tmp_path / "teacher.npy"
    args = ["run", "scenarios/quickstart.yaml", "--quiet", "--set", "train.epochs=1", "--set", "data.train_limit=96",
            "--set", "ep.loss=cross_entropy", "--set", "network.sizes=[64, 20, 20, 10]", "--set", "network.aux=[1]"]
    np.save(teacher, np.zeros((95, 10)))  # one row short
    assert main(args + ["--out", str(tmp_path / "bad"), "--set", f"ep.distill.logits={teacher}"]) == 2
    np.save(teacher, np.random.default_rng(0).normal(size=(96, 10)))
    assert main(args + ["--out", str(tmp_path / "ok"), "--set", f"ep.distill.logits={teacher}"]) == 0
    m = json.loads((tmp_path / "ok" / "metrics.json").read_text())
    assert m["pulse_count"] > 0
    assert main(args + ["--out", str(tmp_path / "L"), "--set", "network.aux=[2]"]) == 2
