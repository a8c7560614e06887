"""The backprop twin: the scenario's graph run feedforward in torch, trained with backprop."""
import numpy as np
import pytest

from crossbar_sim.config import load_scenario
from networks.activations import make_activation
from networks.convolution import ConvGeometry, patches, pixels_to_nchw, pool_max
from networks.graph import Edge, Network

torch = pytest.importorskip("torch")


def _numpy_forward(net, weights, x):
    """The feedforward pass written out in NumPy: each layer the clipped sum of its blocks from below."""
    hi = net.activation.bound
    s = {0: x.astype(np.float64)}
    for l in range(1, net.n_state_layers + 1):
        pre = 0.0
        for e, W in zip(net.edges, weights):
            if e.dst != l:
                continue
            n_src = W.shape[0] - e.bias
            bias = hi * W[-1] if e.bias else 0.0  # per unit, or per channel of a convolution
            if e.conv is None:
                out = s[e.src] @ W[:n_src] + bias
            else:
                pix = patches(s[e.src], e.conv) @ W[:n_src] + bias
                out = pool_max(pix, len(x), e.conv)[0] if e.conv.pool > 1 else pixels_to_nchw(pix, len(x), e.conv)
            pre = pre + out
        s[l] = np.clip(pre, 0.0, hi)
    if net.readout == "state":
        return s[net.n_state_layers]
    V = weights[-1]
    return s[net.n_state_layers] @ V[:-1] + hi * V[-1]


@pytest.mark.parametrize("readout", ["state", "softmax"])
def test_the_twin_runs_the_graph_feedforward(readout):
    from crossbar_sim.bp_twin import FeedForward

    g1, g2 = ConvGeometry(1, 8, 8, 3, 1, 1, pool=2), ConvGeometry(2, 4, 4, 3, 1, 1, pool=2)
    sizes = (64, 32, 12, 5) if readout == "state" else (64, 32, 12, 5, 3)
    mask = np.random.default_rng(1).random((32, 5)) < 0.5
    edges = [Edge(0, 1, True, conv=g1), Edge(1, 2, True, conv=g2), Edge(2, 3, True), Edge(1, 3, False, mask=mask)]
    if readout == "softmax":
        edges.append(Edge(3, 4, True))
    net = Network(sizes, make_activation("relu6", 2.0), readout, tuple(edges))
    weights = net.init_weights(np.random.default_rng(0))
    for W, e in zip(weights, net.edges):
        W *= 3.0
        if e.mask is not None:
            W[: e.mask.shape[0]] += 0.2  # masked entries must not leak through
    x = np.random.default_rng(2).random((6, 64)).astype(np.float32)
    got = FeedForward(net, weights).forward(torch.from_numpy(x)).detach().numpy()
    masked = [W if e.mask is None else W * e.full_mask(net.sizes) for W, e in zip(weights, net.edges)]
    want = _numpy_forward(net, masked, x)
    assert 0 < (want > 0).mean()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_the_twin_learns_digits_and_is_reproducible():
    from crossbar_sim.bp_twin import train_bp
    from crossbar_sim.run import dataset_for

    sc = load_scenario("scenarios/quickstart.yaml", overrides=["train.epochs=3", "ep.loss=cross_entropy",
                                                                "network.sizes=[64, 100, 10]"])
    data = dataset_for(sc)
    first = train_bp(sc, data, progress=False)
    assert first["test_accuracy"] > 0.8  # chance is 0.1
    watched = []

    def on_batch(epoch, batch, correct, predict):  # watching between batches changes no number of the run
        watched.append((epoch, batch, correct, float((predict(data.x_test) == data.y_test).mean())))

    again = train_bp(sc, data, progress=False, on_batch=on_batch)
    assert [r["test_accuracy"] for r in first["history"]] == [r["test_accuracy"] for r in again["history"]]
    per_epoch = -(-len(data.x_train) // sc.data.batch_size)
    assert [(e, b) for e, b, _, _ in watched] == [(e, b) for e in (1, 2, 3) for b in range(1, per_epoch + 1)]
    ends = [w for w in watched if w[1] == per_epoch]
    assert [w[3] for w in ends] == [r["test_accuracy"] for r in first["history"]]  # the epoch's score, at its end
    assert [w[2] / len(data.x_train) for w in ends] == [r["train_accuracy"] for r in first["history"]]
    assert len({w[3] for w in watched}) > 5  # the scores move from batch to batch


def _flushes() -> bool:
    """Whether a subnormal float32 times one comes out zero on this thread."""
    return float(torch.tensor([1e-40], dtype=torch.float32).mul(1.0)) == 0.0


@pytest.mark.parametrize("flush", [False, True])
def test_the_twin_flushes_subnormals_only_when_asked_and_restores_the_default(flush):
    """``flush_subnormals`` (a deep stack's underflowing gradients otherwise slow x86 tens of times) holds while it
    trains; off by default, so recorded twins give the same numbers; the caller's torch is left as torch's default
    has it, subnormals kept."""
    from crossbar_sim.bp_twin import train_bp
    from crossbar_sim.run import dataset_for

    if flush and not torch.set_flush_denormal(False):  # True where the CPU can flush (x86 with SSE3)
        pytest.skip("this CPU cannot flush subnormal floats")
    sc = load_scenario("scenarios/quickstart.yaml", overrides=["train.epochs=1", "ep.loss=cross_entropy",
                                                                "network.sizes=[64, 20, 10]"])
    assert not _flushes()
    during = []
    train_bp(sc, dataset_for(sc), progress=False, on_epoch=lambda row: during.append(_flushes()),
             flush_subnormals=flush)
    assert during == [flush]
    assert not _flushes()


def test_a_regression_set_is_refused():
    from crossbar_sim.bp_twin import train_bp
    from crossbar_sim.run import dataset_for

    sc = load_scenario(raw={"data": {"name": "diabetes"}, "network": {"sizes": [10, 10, 1]}})
    with pytest.raises(ValueError, match="regression"):
        train_bp(sc, dataset_for(sc), progress=False)


def test_the_twin_clips_the_gradient_norm():
    """With a negligible clip norm every step is negligible: the twin predicts as with a zero rate."""
    from crossbar_sim.bp_twin import train_bp
    from crossbar_sim.run import dataset_for

    base = ["train.epochs=1", "ep.loss=cross_entropy", "network.sizes=[64, 100, 10]"]
    clipped = load_scenario("scenarios/quickstart.yaml", overrides=base + ["train.clip_norm=1e-9"])
    frozen = load_scenario("scenarios/quickstart.yaml", overrides=base + ["train.lr=0.0"])
    data = dataset_for(clipped)
    assert train_bp(clipped, data, progress=False)["test_accuracy"] == \
        train_bp(frozen, data, progress=False)["test_accuracy"] < 0.5


def test_the_twin_writes_its_training_logits_as_a_teacher(tmp_path):
    """--logits: the trained twin's logits of the training set, in the data set's order; their argmax scores
    the training set far above chance (so the rows are in order), and an EP run reads them as its teacher."""
    from crossbar_sim.bp_twin import train_bp
    from crossbar_sim.cli import main
    from crossbar_sim.run import dataset_for

    over = ["train.epochs=2", "ep.loss=cross_entropy", "network.sizes=[64, 100, 10]", "data.train_limit=400"]
    sc = load_scenario("scenarios/quickstart.yaml", overrides=over)
    data = dataset_for(sc)
    result = train_bp(sc, data, progress=False, train_logits=True)
    z = result["train_logits"]
    assert z.shape == (400, 10) and z.dtype == np.float32
    assert (z.argmax(1) == data.y_train).mean() > 0.5  # chance 0.1: rows in any other order would score it
    plain = train_bp(sc, data, progress=False)  # asking for the logits changes nothing else
    assert [r["test_accuracy"] for r in plain["history"]] == [r["test_accuracy"] for r in result["history"]]
    with pytest.raises(ValueError, match="cross_entropy"):
        train_bp(load_scenario("scenarios/quickstart.yaml", overrides=over[:1]), data, progress=False,
                 train_logits=True)
    teacher = tmp_path / "teacher.npy"
    np.save(teacher, z)
    assert main(["run", "scenarios/quickstart.yaml", "--quiet", "--out", str(tmp_path / "student"), "--set",
                 f"ep.distill.logits={teacher}", *[f"--set={o}" for o in over[1:]], "--set", "train.epochs=1"]) == 0


@pytest.mark.parametrize("factor", [0.0, 0.25])
def test_the_twin_scales_the_bias_rows_step_by_bias_lr(factor):
    """One plain SGD step (a single batch): with train.bias_lr the weight rows end where they end at the plain
    rate and each bias row moves by the factor times its plain move (not at all at 0)."""
    from crossbar_sim.bp_twin import train_bp
    from crossbar_sim.run import dataset_for

    over = ["train.epochs=1", "ep.loss=cross_entropy", "network.sizes=[64, 30, 10]", "data.train_limit=32",
            "data.batch_size=32"]
    data = dataset_for(load_scenario("scenarios/quickstart.yaml", overrides=over))

    def trained(*extra):
        return train_bp(load_scenario("scenarios/quickstart.yaml", overrides=over + list(extra)), data,
                        progress=False)["weights"]

    start = trained("train.lr=0.0")
    plain = trained("train.lr=0.5")
    scaled = trained("train.lr=0.5", f"train.bias_lr={factor}")
    for w0, w1, w2 in zip(start, plain, scaled):
        np.testing.assert_array_equal(w2[:-1], w1[:-1])
        assert np.abs(w1[-1] - w0[-1]).max() > 1e-4
        np.testing.assert_allclose(w2[-1] - w0[-1], factor * (w1[-1] - w0[-1]), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("distill", [False, True])
def test_the_twin_learns_its_auxiliary_readouts_as_ep_does(tmp_path, distill):
    """With network.aux the twin's loss is the main readout's cross-entropy plus ep.aux_weight times each
    auxiliary readout's, against the distillation's soft targets where ep.distill sets them (what EP nudges
    towards): one plain SGD step over a single batch moves the auxiliary readout by -lr times that gradient,
    written out here in NumPy from the first layer's feedforward state."""
    from crossbar_sim.bp_twin import train_bp
    from crossbar_sim.run import dataset_for
    from crossbar_sim.trainer import distill_targets

    over = ["train.epochs=1", "ep.loss=cross_entropy", "network.sizes=[64, 30, 20, 10]", "network.aux=[1]",
            "ep.aux_weight=0.5", "data.train_limit=32", "data.batch_size=32"]
    if distill:
        logits = np.random.default_rng(5).normal(0, 3, (32, 10)).astype(np.float32)
        np.save(tmp_path / "teacher.npy", logits)
        over += [f"ep.distill.logits={tmp_path / 'teacher.npy'}", "ep.distill.alpha=0.7"]
    sc = load_scenario("scenarios/quickstart.yaml", overrides=over)
    data = dataset_for(sc)

    def trained(lr):
        return train_bp(load_scenario("scenarios/quickstart.yaml", overrides=over + [f"train.lr={lr}"]), data,
                        progress=False)["weights"]

    start, after = trained(0.0), trained(0.2)
    W1, V = start[0], start[-1]  # the first block; the auxiliary readout from layer 1 (last)
    hi = 1.0  # the hard sigmoid's bound
    x = np.asarray(data.x_train, np.float64)
    s1 = np.clip(x @ W1[:-1] + hi * W1[-1], 0.0, hi)
    z = s1 @ V[:-1] + hi * V[-1]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    t = distill_targets(sc.ep.distill, data) if distill else np.eye(10)[data.y_train]
    if distill:
        assert np.abs(t - np.eye(10)[data.y_train]).max() > 0.1  # the soft targets differ from the labels
    err = 0.5 * (p - t) / len(x)
    grad = np.vstack([s1.T @ err, hi * err.sum(0)])
    assert np.abs(grad).max() > 1e-4
    np.testing.assert_allclose(after[-1] - V, -0.2 * grad, rtol=1e-3, atol=1e-6)


def test_the_twin_warms_up_its_rates_as_the_ep_run():
    """One plain SGD step (a single batch) under train.warmup_batches=4 moves every weight a quarter of the
    plain step, as the EP write-back's first batch does (Trainer._write)."""
    from crossbar_sim.bp_twin import train_bp
    from crossbar_sim.run import dataset_for

    over = ["train.epochs=1", "ep.loss=cross_entropy", "network.sizes=[64, 30, 10]", "data.train_limit=32",
            "data.batch_size=32", "train.lr=0.5"]
    data = dataset_for(load_scenario("scenarios/quickstart.yaml", overrides=over))

    def trained(*extra):
        return train_bp(load_scenario("scenarios/quickstart.yaml", overrides=over + list(extra)), data,
                        progress=False)["weights"]

    start, plain, warm = trained("train.lr=0.0"), trained(), trained("train.warmup_batches=4")
    for w0, w1, w2 in zip(start, plain, warm):
        assert np.abs(w1 - w0).max() > 1e-4
        np.testing.assert_allclose(w2 - w0, 0.25 * (w1 - w0), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("omega", [1.0, 1.4])
def test_the_relaxed_twin_settles_as_the_engine(omega):
    """The relaxed twin's layers are the free phase of the engine's coordinate dynamics (its NumPy twin, ideal
    periphery) from zero states over the same steps: pooled convolutions, a masked skip block, ReLU6-style
    bound, an auxiliary readout outside the dynamics."""
    from crossbar_sim import kernels as K
    from crossbar_sim import twins
    from crossbar_sim.bp_twin import Relaxed
    from tests.helpers.periphery import periphery

    g1, g2 = ConvGeometry(1, 8, 8, 3, 1, 1, pool=2), ConvGeometry(2, 4, 4, 3, 1, 1, pool=2)
    mask = np.random.default_rng(1).random((32, 5)) < 0.5
    edges = (Edge(0, 1, True, conv=g1), Edge(1, 2, True, conv=g2), Edge(2, 3, True), Edge(1, 3, False, mask=mask),
             Edge(3, 4, True), Edge(1, 4, True))
    net = Network((64, 32, 12, 5, 3), make_activation("relu6", 2.0), "softmax", edges)
    weights = [0.5 * W for W in net.init_weights(np.random.default_rng(0))]
    x = np.random.default_rng(2).random((6, 64)).astype(np.float32)
    steps = 12
    got = Relaxed(net, weights, steps, omega).layers(torch.from_numpy(x))
    masked = [W if e.mask is None else W * e.full_mask(net.sizes) for W, e in zip(weights, net.edges)]
    zeros = [np.zeros((6, n), np.float32) for n in net.sizes[1:4]]
    want, ran, _ = twins.settle(x, np.eye(3, dtype=np.float32)[np.arange(6) % 3], zeros, masked,
                                K.DYNAMICS["coordinate"], K.LOSSES["cross_entropy"], steps, 0.0, 0.5, 2.0, 0.0,
                                periphery(analog=False), np.uint64(3), [(e.src, e.dst, e.bias, e.conv) for e in edges],
                                list(net.colors()), 1.0, omega)
    assert ran == steps and len(got) == 3
    for a, b in zip(got, want):
        assert ((b > 0) & (b < 2.0)).mean() > 0.5  # mostly inside the box: neither dead nor saturated
        np.testing.assert_allclose(a.detach().numpy(), b, rtol=1e-4, atol=1e-5)


def test_the_relaxed_twin_refuses_other_dynamics():
    from crossbar_sim.bp_twin import train_bp
    from crossbar_sim.run import dataset_for

    sc = load_scenario("scenarios/quickstart.yaml", overrides=["ep.dynamics=euler"])
    with pytest.raises(ValueError, match="coordinate"):
        train_bp(sc, dataset_for(sc), progress=False, relaxed=True)


def test_one_step_of_the_relaxed_twin_is_the_feedforward_twin():
    """From zero states, one coordinate step of a chain updates each layer before the layer above has moved:
    no feedback yet, so the relaxed twin of one step is the feedforward twin."""
    from crossbar_sim.bp_twin import FeedForward, Relaxed

    g1 = ConvGeometry(1, 8, 8, 3, 1, 1, pool=2)
    net = Network((64, 32, 6, 3), make_activation("hard_sigmoid"), "softmax",
                  (Edge(0, 1, True, conv=g1), Edge(1, 2, True), Edge(2, 3, True)))
    weights = net.init_weights(np.random.default_rng(0))
    x = torch.from_numpy(np.random.default_rng(2).random((6, 64)).astype(np.float32))
    one = Relaxed(net, weights, 1).forward(x).detach().numpy()
    np.testing.assert_allclose(one, FeedForward(net, weights).forward(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(Relaxed(net, weights, 5).forward(x).detach().numpy() - one).max() > 1e-4  # the feedback acts


@pytest.mark.parametrize("pairs", ["top", "all"])
def test_the_twin_holds_its_spectral_cap_over_the_pairs_asked(pairs):
    """As the EP run (train.spectral_cap_pairs): a cap under the initial largest singular value (0.5x), so that
    several pairs start above it; over all pairs every inner block ends at its cap, over the top pair alone
    above it."""
    from crossbar_sim.bp_twin import train_bp
    from crossbar_sim.run import dataset_for

    over = ["train.epochs=1", "ep.loss=cross_entropy", "network.sizes=[64, 30, 20, 10]", "data.train_limit=64",
            "data.batch_size=32", "train.lr=0.05", "train.spectral_cap=0.5", f"train.spectral_cap_pairs={pairs}"]
    sc = load_scenario("scenarios/quickstart.yaml", overrides=over)
    data = dataset_for(sc)
    start = train_bp(load_scenario("scenarios/quickstart.yaml", overrides=over + ["train.lr=0.0",
                                                                                  "train.spectral_cap=null"]),
                     data, progress=False)["weights"]
    end = train_bp(sc, data, progress=False)["weights"]
    top = lambda W: np.linalg.svd(W[:-1].astype(np.float64), compute_uv=False)[0]
    ratio = max(top(w1) / (0.5 * top(w0)) for w0, w1 in zip(start[:2], end[:2]))  # the two inner blocks
    if pairs == "all":
        assert ratio <= 1 + 1e-5
    else:
        assert ratio > 1.05
