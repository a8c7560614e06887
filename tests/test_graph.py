"""Networks on a general connection graph: small-world rewiring, colouring, the settle kernel against its
twin on skip connections and masks, energy descent of the colour updates, and EP against BPTT."""
import numpy as np
import pytest

from crossbar_sim.config import EPConfig, load_scenario
from crossbar_sim.engine import Engine
from crossbar_sim.ep import EPStep
from crossbar_sim.run import dataset_for
from crossbar_sim.tiles import Periphery
from crossbar_sim.trainer import Trainer, block_rates
from device_models.ideal import Ideal
from networks.activations import make_activation
from networks.graph import Edge, Network
from networks.small_world import log_spread, rewire, small_world
from tests.helpers.graph_settle import CASES, assert_settle_matches_twin

HS = make_activation("hard_sigmoid")
SIZES = (30, 20, 20, 20, 20, 10)


def _count(masks):
    return sum(int(m.sum()) for m in masks.values())


@pytest.mark.parametrize("p", [0.0, 0.05, 0.4, 0.727, 1.0])
def test_rewiring_conserves_the_number_of_connections(p):
    masks = rewire(SIZES, p, np.random.default_rng(1))
    layered = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    assert _count(masks) == layered
    adjacent = sum(int(masks[(l, l + 1)].sum()) for l in range(len(SIZES) - 1))
    if p == 0.0:
        assert set(masks) == {(l, l + 1) for l in range(len(SIZES) - 1)} and adjacent == layered
    else:  # each connection is rewired with probability p, and a removed one may be drawn back
        assert 0.5 * p < (layered - adjacent) / layered <= p + 0.03


def test_rewiring_never_joins_a_layer_to_itself_or_to_its_neighbour_twice():
    masks = rewire(SIZES, 0.5, np.random.default_rng(2))
    for (a, b), m in masks.items():
        assert a < b and m.shape == (SIZES[a], SIZES[b]) and m.dtype == bool
    assert any(b - a >= 2 and m.any() for (a, b), m in masks.items())


def test_adding_keeps_the_layered_connections():
    masks = rewire(SIZES, 0.1, np.random.default_rng(3), mode="add")
    layered = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))
    assert all(masks[(l, l + 1)].all() for l in range(len(SIZES) - 1))
    assert _count(masks) == layered + round(0.1 * layered)


def test_rewiring_is_reproducible_from_the_seed():
    a = rewire(SIZES, 0.2, np.random.default_rng(5))
    b = rewire(SIZES, 0.2, np.random.default_rng(5))
    c = rewire(SIZES, 0.2, np.random.default_rng(6))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert any(k not in c or (a[k] != c[k]).any() for k in a)


def test_log_spread_matches_a_hand_computation():
    # RMS corrections 1, 10, 100 per layer: log10 = 0, 1, 2, whose (population) std is sqrt(2/3).
    assert log_spread([1.0, 10.0, 100.0]) == pytest.approx(np.sqrt(2 / 3))
    assert log_spread([3.0, 3.0]) == 0.0


def test_colouring_separates_every_block():
    net = small_world(SIZES, HS, "state", 0.3, np.random.default_rng(0))
    colour = net.colors()
    for e in net.state_edges:
        if e.src >= 1:
            assert colour[e.src] != colour[e.dst]
    chain = Network(SIZES, HS, "state", tuple(Edge(l - 1, l, True) for l in range(1, 6)))
    assert list(chain.colors()[1:]) == [0, 1, 0, 1, 0]


def _graph(readout="state", seed=0):
    """A 12-9-8-7-6 network (5 classes with the readout) with skip blocks and masks, weights in range."""
    sizes = (12, 9, 8, 7, 6) if readout == "state" else (12, 9, 8, 7, 6, 5)
    net = small_world(sizes, HS, readout, 0.35, np.random.default_rng(seed))
    g = np.random.default_rng(seed + 10)
    weights = net.init_weights(g)
    for W, e in zip(weights, net.edges):
        W[: sizes[e.src]] *= 1.5
        if e.bias:
            W[-1] = g.uniform(0.0, 0.3, W.shape[1])
    return net, weights




@pytest.mark.parametrize("analog", [False, True], ids=["exact", "analog"])
@pytest.mark.parametrize("dyn,loss", CASES, ids=[f"{d}-{l}" for d, l in CASES])
def test_settle_on_a_skip_graph_matches_twin(dyn, loss, analog):
    net, weights = _graph("state" if loss == "mse" else "softmax")
    assert any(not e.adjacent for e in net.edges) and any(e.mask is not None for e in net.edges)
    assert_settle_matches_twin(net, weights, dyn, loss, analog)


def test_colour_updates_never_increase_the_energy_of_a_skip_graph():
    net, weights = _graph()
    engine = Engine(net, weights, Ideal(), Periphery(), "round", np.random.default_rng(0))
    B = 8
    x = np.random.default_rng(4).random((B, net.sizes[0])).astype(np.float32)
    y = np.zeros((B, net.sizes[-1]), np.float32)
    S = np.zeros(B * engine.state_size(), np.float32)
    energies = []
    for _ in range(30):
        engine.settle(x, y, S, 0.0, 1, "coordinate", 0.0, 0.5)
        energies.append(net.energy(x, engine.layers(S, B), engine.weights()))
    steps = np.diff(np.array(energies), axis=0)
    assert steps.max() <= 1e-5 and energies[-1].mean() < energies[0].mean()


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("omega", [1.0, 1.6])
def test_centered_ep_on_a_skip_graph_matches_bptt(loss, omega):
    """Also over-relaxed: this graph's energy is not convex, and omega 1.6 settles some samples in other minima
    than omega 1, so BPTT runs through the same over-relaxed steps."""
    pytest.importorskip("torch")
    from tests.helpers.bptt import bptt_gradient

    net, weights = _graph("state" if loss == "mse" else "softmax", seed=2)
    g = np.random.default_rng(3)
    x = g.random((40, net.sizes[0])).astype(np.float32)
    y = np.eye(net.sizes[-1], dtype=np.float32)[g.integers(0, net.sizes[-1], 40)]
    engine = Engine(net, weights, Ideal(), Periphery(), "round", np.random.default_rng(0))
    ep = EPConfig(estimator="centered", beta=0.01, dynamics="coordinate", free_steps=400, nudge_steps=400, tol=0.0,
                  omega=omega)
    est, _ = EPStep(engine, ep).estimate(x, y, np.zeros(40 * engine.state_size(), np.float32), np.random.default_rng(0))
    masks = [e.full_mask(net.sizes) for e in net.edges]
    est = np.concatenate([(d if m is None else d * m).ravel() for d, m in zip(est, masks)])
    ref = np.concatenate([r.ravel() for r in bptt_gradient(
        x, y, weights, net.n_state_layers, loss, 400, edges=[(e.src, e.dst, int(e.bias)) for e in net.edges],
        colors=list(net.colors()), masks=masks, omega=omega)])
    assert est @ ref / np.linalg.norm(est) / np.linalg.norm(ref) >= 0.99


def test_masked_connections_are_no_devices_on_a_crossbar():
    sc = load_scenario(raw={"data": {"name": "digits", "train_limit": 64}, "train": {"epochs": 1},
                            "network": {"kind": "small_world", "sizes": [64, 20, 20, 10], "p": 0.3},
                            "hardware": {"device": {"model": "soft_bounds", "bits": 4, "d2d": 0.1}}})
    tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    tr.fit()
    for array, e in zip(tr.engine.arrays, tr.network.edges):
        mask = e.full_mask(tr.network.sizes)
        if mask is None:
            continue
        absent = np.concatenate([~mask.ravel(), ~mask.ravel()])
        assert (array.G[absent] == 0).all() and (array.pulses[absent] == 0).all()
        assert (array.W_view[~mask] == 0).all()
    assert tr.engine.pulses > 0
    # the same seed draws the same topology
    again = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    assert all(((a.mask is None and b.mask is None) or (a.mask == b.mask).all())
               for a, b in zip(tr.network.edges, again.network.edges))


def test_per_layer_rates_reach_the_skip_blocks_into_the_same_layer():
    net, _ = _graph()
    rates = block_rates(net, [0.1, 0.2, 0.3, 0.4])
    assert [r for r, e in zip(rates, net.edges) if e.adjacent] == [0.1, 0.2, 0.3, 0.4]
    assert all(r == [0.1, 0.2, 0.3, 0.4][e.dst - 1] for r, e in zip(rates, net.edges))


@pytest.mark.parametrize("rounding", ["round", "stochastic"])
def test_lost_update_share_tells_rounding_apart(rounding):
    """Deterministic rounding onto 3-bit devices drops nearly every EP correction; stochastic rounding delivers
    them in expectation."""
    sc = load_scenario(raw={"data": {"name": "digits", "train_limit": 320}, "train": {"epochs": 1},
                            "network": {"sizes": [64, 20, 10]},
                            "hardware": {"device": {"model": "linear_step", "bits": 3},
                                         "tile": {"dac_bits": 0, "adc_bits": 0, "w_max": 0.5},
                                         "update": {"rounding": rounding}}})
    tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    tr.fit()
    lost = tr.diag.epochs[-1]["lost_fraction"]
    assert len(lost) == 2 and len(tr.diag.epochs[-1]["rms"]) == 2
    if rounding == "round":
        assert min(lost) > 0.9
    else:
        assert max(abs(v) for v in lost) < 0.25


def test_layer_skipping_blocks_get_their_own_lost_share():
    """The skip blocks' writes are watched too: on 3-bit devices with deterministic rounding their share is
    near 1, as the adjacent blocks'; a layered network has no such share."""
    def run(kind):
        sc = load_scenario(raw={"data": {"name": "digits", "train_limit": 320}, "train": {"epochs": 1},
                                "network": {"kind": kind, "sizes": [64, 20, 20, 20, 10], "p": 0.4},
                                "hardware": {"device": {"model": "linear_step", "bits": 3},
                                             "tile": {"dac_bits": 0, "adc_bits": 0, "w_max": 0.5},
                                             "update": {"rounding": "round"}}})
        tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
        tr.fit()
        return tr.diag.epochs[-1]

    row = run("small_world")
    assert 0.9 < row["lost_fraction_skip"] <= 1.0 and len(row["lost_fraction"]) == 4
    assert "lost_fraction_skip" not in run("layered")


def test_learning_plot_shows_skip_shares_and_overshoot(tmp_path, monkeypatch):
    """learning.png draws the skip blocks' share and keeps a negative (overshooting) share in view, with epochs
    that lack a share (NaN) in between."""
    from crossbar_sim import report

    seen = {}
    real = report.save_png

    def spy(fig, path):
        seen["ylim"] = fig.axes[1].get_ylim()
        seen["labels"] = [line.get_label() for line in fig.axes[1].get_lines()]
        real(fig, path)

    epochs = [{"rms": [1e-3, 1e-2], "log_spread": 0.5, "lost_fraction": [0.5, -0.2], "lost_fraction_skip": 0.9},
              {"rms": [1e-3, 1e-2], "log_spread": 0.5, "lost_fraction": [0.4, 0.1]}]
    monkeypatch.setattr(report, "save_png", spy)
    report.plot_learning(tmp_path, {"crossbar": {"layers": ["0->1", "1->2"], "epochs": epochs}})
    assert (tmp_path / "learning.png").is_file()
    assert seen["ylim"][0] <= -0.2 and "layer-skipping blocks" in seen["labels"]


def test_the_resnet_takes_one_rate_per_layer_and_its_skips_take_their_destinations():
    from crossbar_sim.config import ConfigError
    from crossbar_sim.trainer import build_network, streams

    raw = {"data": {"name": "fashion-mnist"},
           "network": {"kind": "hopfield_resnet", "image": [1, 28, 28], "sizes": [784, 10], "channels": [4, 8],
                       "activation": "relu6"}}
    lr = [0.1, 0.2, 0.3, 0.4, 0.5]  # a1, b1, a2, b2, head
    sc = load_scenario(raw={**raw, "train": {"lr": lr}})
    net = build_network(sc, streams(0)["topology"])
    rates = block_rates(net, sc.train.lr)
    assert [(e.src, e.dst, r) for e, r in zip(net.edges, rates) if not e.adjacent] == [(0, 2, 0.2), (2, 4, 0.4)]
    assert all(r == lr[e.dst - 1] for r, e in zip(rates, net.edges))
    with pytest.raises(ConfigError, match=r"train.lr: expected one rate per layer \(5: two per residual block"):
        load_scenario(raw={**raw, "train": {"lr": lr[:4]}})
