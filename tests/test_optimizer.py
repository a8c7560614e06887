"""SGD momentum and weight decay on the write-back: the recurrence, the checkpoint, and the rules."""
import pickle

import numpy as np
import pytest

from crossbar_sim.config import ConfigError, load_scenario
from crossbar_sim.run import dataset_for
from crossbar_sim.trainer import Trainer, clip_global_norm, relative_step, spectral_excess, tangential, top_singular

RAW = {"data": {"name": "digits", "train_limit": 128, "batch_size": 32}, "train": {"epochs": 3, "lr": 0.05},
       "ep": {"free_steps": 8, "nudge_steps": 4}}


def _trainer(**train):
    sc = load_scenario(raw={**RAW, "train": {**RAW["train"], **train},
                            "hardware": {"device": {"model": "linear_step", "bits": 8}}})
    return sc, Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)


@pytest.mark.parametrize("nesterov", [False, True])
def test_the_step_follows_the_momentum_recurrence(nesterov):
    _, tr = _trainer(momentum=0.9, nesterov=nesterov, weight_decay=0.01)
    array = tr.engine.arrays[0]
    g1, g2 = (np.random.default_rng(s).normal(size=array.W_view.shape) for s in (1, 2))
    W = array.W_view.astype(np.float64)
    d1 = g1 - 0.01 * W
    step1 = tr._direction(0, g1, array)
    np.testing.assert_allclose(step1, d1 + 0.9 * d1 if nesterov else d1, rtol=1e-6, atol=1e-9)
    d2 = g2 - 0.01 * W
    v2 = 0.9 * d1 + d2
    step2 = tr._direction(0, g2, array)
    np.testing.assert_allclose(step2, d2 + 0.9 * v2 if nesterov else v2, rtol=1e-6, atol=1e-9)


def test_without_momentum_or_decay_the_step_is_the_estimate():
    _, tr = _trainer()
    g = np.ones(tr.engine.arrays[1].W_view.shape)
    assert tr._direction(1, g, tr.engine.arrays[1]) is g and tr.velocity is None


def test_momentum_survives_a_checkpoint():
    sc, whole = _trainer(momentum=0.8, weight_decay=1e-3)
    whole.fit()
    _, first = _trainer(momentum=0.8, weight_decay=1e-3)
    first.scenario.train.epochs = 1
    first.fit()
    first.scenario.train.epochs = 3
    state = pickle.loads(pickle.dumps(first.state()))
    _, second = _trainer(momentum=0.8, weight_decay=1e-3)
    second.load_state(state)
    second.fit()
    for a, b in zip(second.velocity, whole.velocity):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(second.engine.arrays, whole.engine.arrays):
        np.testing.assert_array_equal(a.G, b.G)
    assert np.abs(whole.velocity[0]).sum() > 0


@pytest.mark.parametrize("train,hardware,message", [
    ({"momentum": 0.9}, {"update": {"mode": "pulse_trains"}}, "use update.mode: pulse_count"),
    ({"clip_norm": 1.0}, {"update": {"mode": "pulse_trains"}}, "pulse trains write each phase's outer products directly"),
    ({"clip_norm": 0.0}, {}, "train.clip_norm"),
    ({"relative_steps": True}, {"update": {"mode": "pulse_trains"}}, "pulse trains write each phase's outer products directly"),
    ({"relative_steps": True, "clip_norm": 1.0}, {}, "use one of them"),
    ({"keep_norm": True}, {"update": {"mode": "pulse_trains"}}, "pulse trains write each phase's outer products directly"),
    ({"spectral_cap": 1.0}, {"update": {"mode": "pulse_trains"}}, "pulse trains write each phase's outer products directly"),
    ({"spectral_cap": 0.0}, {}, "train.spectral_cap"),
    ({"spectral_cap": 1.0, "spectral_cap_pairs": "second"}, {}, "train.spectral_cap_pairs"),
    ({"bias_lr": 0.1}, {"update": {"mode": "pulse_trains"}}, "pulse trains write each phase's outer products directly"),
    ({"bias_lr": -1.0}, {}, "train.bias_lr"),
    ({"momentum": 1.0}, {}, "train.momentum: expected a value below 1"),
    ({"nesterov": True}, {}, "train.nesterov: needs train.momentum > 0"),
])
def test_bad_optimiser_settings_are_refused(train, hardware, message):
    with pytest.raises(ConfigError, match=message):
        load_scenario(raw={**RAW, "train": {**RAW["train"], **train}, "hardware": hardware})


def test_the_cosine_schedule_decays_each_epochs_writes():
    from crossbar_sim.trainer import lr_factor

    sc = load_scenario(raw={**RAW, "train": {**RAW["train"], "epochs": 4, "schedule": "cosine"}})
    assert [round(lr_factor(sc.train, e), 6) for e in (1, 2, 3, 4)] == [1.0, 0.853553, 0.5, 0.146447]
    assert lr_factor(load_scenario(raw=RAW).train, 3) == 1.0
    # the writes of epoch 3 are half those of epoch 1 (ideal devices: the weight change is lr * estimate)
    tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    est = [np.ones(a.W_view.shape) for a in tr.engine.arrays]
    steps = []
    for epoch in (1, 3):
        tr._epoch = epoch
        before = tr.engine.arrays[0].W_view.copy()
        tr._write(None, est, None)
        steps.append(float(np.abs(tr.engine.arrays[0].W_view - before).max()))
    assert steps[1] == pytest.approx(0.5 * steps[0], rel=1e-5)


def test_the_warmup_ramps_the_first_batches_writes_over_the_whole_run():
    from crossbar_sim.trainer import lr_factor

    sc = load_scenario(raw={**RAW, "train": {**RAW["train"], "epochs": 4, "schedule": "cosine", "warmup_batches": 4}})
    assert [lr_factor(sc.train, 1, b) for b in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_factor(sc.train, 3, 1) == pytest.approx(0.5 * 0.5)  # on top of the cosine decay
    # a trained batch advances the warm-up: the second batch writes twice the first's step of the same estimate
    tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    est = [np.ones(a.W_view.shape) for a in tr.engine.arrays]
    steps = []
    for _ in range(2):
        before = tr.engine.arrays[0].W_view.copy()
        tr._write(None, est, None)
        steps.append(float(np.abs(tr.engine.arrays[0].W_view - before).max()))
        tr.train_batch(np.arange(sc.data.batch_size), 1, "test")
    assert steps[1] == pytest.approx(2 * steps[0], rel=1e-5)
    with pytest.raises(ConfigError, match="train.warmup_batches"):
        load_scenario(raw={**RAW, "train": {**RAW["train"], "warmup_batches": -1}})


def test_init_gain_scales_the_initial_weights():
    sc1 = load_scenario(raw=RAW)
    sc2 = load_scenario(raw={**RAW, "network": {"init_gain": 0.5}})
    a = Trainer(sc1, dataset_for(sc1), sc1.hardware.device.build(), progress=False)
    b = Trainer(sc2, dataset_for(sc2), sc2.hardware.device.build(), progress=False)
    for x, y in zip(a.engine.weights(), b.engine.weights()):
        np.testing.assert_allclose(y, 0.5 * x, rtol=1e-6)
    assert np.abs(a.engine.weights()[0]).max() > 0


def test_skip_gain_scales_only_the_layer_skipping_blocks():
    net = {"kind": "small_world", "sizes": [64, 20, 20, 20, 10], "p": 0.3, "init_gain": 0.5}
    sc1 = load_scenario(raw={**RAW, "network": net})
    sc2 = load_scenario(raw={**RAW, "network": {**net, "skip_gain": 3.0}})
    a = Trainer(sc1, dataset_for(sc1), sc1.hardware.device.build(), progress=False)
    b = Trainer(sc2, dataset_for(sc2), sc2.hardware.device.build(), progress=False)
    kinds = [e.adjacent for e in a.network.edges]
    assert True in kinds and False in kinds
    for adjacent, x, y in zip(kinds, a.engine.weights(), b.engine.weights()):
        np.testing.assert_allclose(y, x if adjacent else 3.0 * x, rtol=1e-6)
        assert np.abs(x).max() > 0


def test_clip_global_norm_scales_every_block_by_one_factor():
    rng = np.random.default_rng(3)
    est = [rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=(3,)).astype(np.float32)]
    norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in est))
    clipped = clip_global_norm(est, norm / 4)
    np.testing.assert_allclose(np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in clipped)), norm / 4, rtol=1e-5)
    for a, b in zip(clipped, est):
        np.testing.assert_allclose(a, b / 4, rtol=1e-5)
        assert a.dtype == b.dtype
    assert clip_global_norm(est, norm * 2) is est and clip_global_norm(est, None) is est


def test_clip_global_norm_counts_only_existing_connections():
    """An absent (masked) connection's entry of the estimate is no update: it does not enter the norm."""
    g = np.array([[3.0, 1e6], [4.0, 0.0]], dtype=np.float32)
    mask = np.array([[True, False], [True, True]])
    np.testing.assert_allclose(clip_global_norm([g], 1.0, [mask])[0], g / 5, rtol=1e-6)


def test_clip_norm_bounds_the_written_update():
    """With an ideal device the weights move by exactly lr times the clipped estimate."""
    sc = load_scenario(raw={**RAW, "train": {"epochs": 1, "lr": 0.05, "clip_norm": 1e-3}})
    tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    before = [a.W_view.astype(np.float64).copy() for a in tr.engine.arrays]
    tr.train_batch(np.arange(32), 1, "test")
    moved = np.sqrt(sum(((a.W_view - b) ** 2).sum() for a, b in zip(tr.engine.arrays, before)))
    np.testing.assert_allclose(moved, 0.05 * 1e-3, rtol=1e-3)


def test_relative_step_takes_the_weights_norm_over_existing_connections():
    g = np.array([[3.0, 1e6], [4.0, 0.0]], dtype=np.float32)
    W = np.array([[0.6, 0.0], [0.0, 0.8]], dtype=np.float32)
    mask = np.array([[True, False], [True, True]])
    np.testing.assert_allclose(relative_step(g, W, mask), g / 5, rtol=1e-6)  # ||W|| 1, ||g|| 5 where it exists
    np.testing.assert_allclose(relative_step(g[:, :1], 2 * W[:, :1]), g[:, :1] * 1.2 / 5, rtol=1e-6)
    zero = np.zeros((2, 2), np.float32)
    assert relative_step(zero, W) is zero


def test_relative_step_leaves_the_bias_row_at_the_plain_rate():
    g = np.array([[3.0, 0.0], [4.0, 0.0], [100.0, -50.0]], dtype=np.float32)
    W = np.array([[0.6, 0.0], [0.0, 0.8], [9.0, 9.0]], dtype=np.float32)
    out = relative_step(g, W, bias=True)
    np.testing.assert_allclose(out[:2], g[:2] / 5, rtol=1e-6)
    np.testing.assert_array_equal(out[2], g[2])


def test_relative_steps_move_every_block_by_lr_times_its_norm():
    """Ideal devices, no momentum: each block's weight rows move by lr times their own norm, whatever the
    scale of its estimate; the bias row by lr times its estimate."""
    sc = load_scenario(raw={**RAW, "network": {"sizes": [64, 30, 20, 10]},
                            "train": {"epochs": 1, "lr": 0.01, "relative_steps": True}})
    tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    assert all(e.bias for e in tr.network.edges)
    before = [a.W_view.astype(np.float64).copy() for a in tr.engine.arrays]
    tr.train_batch(np.arange(32), 1, "test")
    for a, b in zip(tr.engine.arrays, before):
        moved = np.sqrt(((a.W_view[:-1] - b[:-1]) ** 2).sum())
        np.testing.assert_allclose(moved, 0.01 * np.sqrt((b[:-1] ** 2).sum()), rtol=1e-3)


def test_bias_lr_scales_only_the_bias_rows_of_the_step():
    """Ideal devices, relative steps: with train.bias_lr the weight rows move as before and each bias row by that
    factor times what it moved at the plain rate."""
    moves = {}
    for factor in (1.0, 0.1):
        sc = load_scenario(raw={**RAW, "network": {"sizes": [64, 30, 20, 10]},
                                "train": {"epochs": 1, "lr": 0.01, "relative_steps": True, "bias_lr": factor}})
        tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
        before = [a.W_view.astype(np.float64).copy() for a in tr.engine.arrays]
        tr.train_batch(np.arange(32), 1, "test")
        moves[factor] = [a.W_view.astype(np.float64) - b for a, b in zip(tr.engine.arrays, before)]
    for plain, scaled in zip(moves[1.0], moves[0.1]):
        np.testing.assert_allclose(scaled[:-1], plain[:-1], rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(scaled[-1], 0.1 * plain[-1], rtol=1e-4, atol=1e-9)
        assert np.abs(plain[-1]).max() > 0


def test_tangential_removes_the_radial_part_of_the_weight_rows_only():
    rng = np.random.default_rng(5)
    W = rng.normal(size=(6, 3)).astype(np.float32)
    g = rng.normal(size=(6, 3)).astype(np.float32)
    out = tangential(g, W, bias=True)
    assert abs(float(np.sum(out[:5].astype(np.float64) * W[:5]))) < 1e-5
    np.testing.assert_array_equal(out[5], g[5])
    np.testing.assert_allclose(tangential(W.copy(), W), 0.0, atol=1e-6)  # a purely radial step vanishes
    assert tangential(g, np.zeros_like(W)) is g


def test_keep_norm_holds_the_inner_blocks_norms_and_frees_the_readout():
    """Ideal devices, cross-entropy readout: over an epoch the blocks inside the dynamics keep their weight
    rows' norm to second order in the step, the readout's norm moves."""
    sc = load_scenario(raw={**RAW, "network": {"sizes": [64, 30, 20, 10]},
                            "ep": {**RAW["ep"], "loss": "cross_entropy"},
                            "train": {"epochs": 1, "lr": 0.01, "relative_steps": True, "keep_norm": True}})
    tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    inner = len(tr.network.state_edges)
    assert 0 < inner < len(tr.engine.arrays)
    norms = [np.linalg.norm(a.W_view[:-1]) for a in tr.engine.arrays]
    tr.fit()
    after = [np.linalg.norm(a.W_view[:-1]) for a in tr.engine.arrays]
    change = [abs(n1 / n0 - 1) for n0, n1 in zip(norms, after)]
    assert max(change[:inner]) < 3e-4  # 4 batches of steps 1% of the norm: growth of order 4 * 1e-4 / 2
    assert min(change[inner:]) > 10 * max(change[:inner])


def test_spectral_excess_brings_the_top_singular_value_to_the_cap():
    rng = np.random.default_rng(7)
    W = rng.normal(size=(9, 4))
    s0 = np.linalg.svd(W[:8], compute_uv=False)
    fixed = W + spectral_excess(W, 0.8 * s0[0], bias=True)
    s1 = np.linalg.svd(fixed[:8], compute_uv=False)
    np.testing.assert_allclose(s1[0], max(0.8 * s0[0], s0[1]), rtol=1e-9)
    np.testing.assert_allclose(s1[1:], s0[1:], rtol=1e-9)  # the other singular values untouched
    np.testing.assert_array_equal(fixed[8], W[8])  # the bias row untouched
    assert spectral_excess(W, 1.01 * s0[0], bias=True) is None
    assert top_singular(W)[0] == pytest.approx(np.linalg.svd(W, compute_uv=False)[0])


def test_spectral_excess_over_all_pairs_brings_each_one_above_the_cap_to_it():
    rng = np.random.default_rng(7)
    W = rng.normal(size=(9, 4))
    s0 = np.linalg.svd(W[:8], compute_uv=False)
    cap = 0.5 * (s0[1] + s0[2])  # two above the cap, two below
    fixed = W + spectral_excess(W, cap, bias=True, pairs="all")
    s1 = np.linalg.svd(fixed[:8], compute_uv=False)
    np.testing.assert_allclose(s1, [cap, cap, s0[2], s0[3]], rtol=1e-9)
    np.testing.assert_array_equal(fixed[8], W[8])
    top = W + spectral_excess(W, cap, bias=True)  # the default: the second pair stays above
    np.testing.assert_allclose(np.linalg.svd(top[:8], compute_uv=False)[:2], [s0[1], cap], rtol=1e-9)
    assert spectral_excess(W, 1.01 * s0[0], bias=True, pairs="all") is None


@pytest.mark.parametrize("pairs", ["top", "all"])
def test_spectral_cap_over_all_pairs_holds_where_the_top_pair_alone_does_not(pairs):
    """A cap under the initial largest singular value (0.5x), so that several pairs start above it: writing
    off the top pair alone leaves the block over its cap; writing off every pair holds it."""
    sc = load_scenario(raw={**RAW, "network": {"sizes": [64, 30, 20, 10]},
                            "train": {"epochs": 1, "lr": 0.05, "spectral_cap": 0.5, "spectral_cap_pairs": pairs}})
    tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    tr.fit()
    ratio = max(top_singular(a.W_view[:-1])[0] / c for a, c in zip(tr.engine.arrays, tr.spectral_caps))
    if pairs == "all":
        assert ratio <= 1 + 1e-5
    else:
        assert ratio > 1.05


def test_spectral_cap_holds_the_inner_blocks_and_frees_the_readout():
    """Ideal devices, a large rate: the inner blocks' top singular values end at or below their caps (without
    the cap they grow past them); the readout has no cap."""
    sc = load_scenario(raw={**RAW, "network": {"sizes": [64, 30, 20, 10]},
                            "ep": {**RAW["ep"], "loss": "cross_entropy"},
                            "train": {"epochs": 2, "lr": 0.5, "spectral_cap": 1.0}})
    tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    inner = len(tr.network.state_edges)
    s0 = [top_singular(a.W_view[:-1])[0] for a in tr.engine.arrays]
    assert [c for c in tr.spectral_caps] == pytest.approx(s0[:inner])
    tr.fit()
    s1 = [top_singular(a.W_view[:-1])[0] for a in tr.engine.arrays]
    for k in range(inner):
        assert s1[k] <= s0[k] * (1 + 1e-5)
    assert tr.spectral_caps is not None and len(tr.spectral_caps) == inner
    free = load_scenario(raw={**RAW, "network": {"sizes": [64, 30, 20, 10]}, "ep": {**RAW["ep"], "loss": "cross_entropy"},
                              "train": {"epochs": 2, "lr": 0.5}})
    tr2 = Trainer(free, dataset_for(free), free.hardware.device.build(), progress=False)
    tr2.fit()
    assert max(top_singular(a.W_view[:-1])[0] / s for a, s in zip(tr2.engine.arrays[:inner], s0)) > 1.003


def _coupled(cap):
    sc = load_scenario(raw={**RAW, "network": {"sizes": [64, 30, 20, 16, 10], "init_gain": 3.0},
                            "ep": {**RAW["ep"], "loss": "cross_entropy"},
                            "train": {"epochs": 1, "lr": 0.05, "free_coupling_cap": cap}})
    return Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)


def test_free_coupling_cap_scales_the_coupling_blocks_down_to_it():
    """At the batch's free states, the median top eigenvalue on their free units ends at the cap: every block
    between state layers scaled by one factor, the input block and the biases untouched."""
    tr = _coupled(0.1)
    net = tr.network
    _, res = tr.step.estimate(tr.data.x_train[:8], tr.data.targets(tr.data.y_train[:8]),
                              np.zeros(8 * tr.engine.state_size(), np.float32), np.random.default_rng(0))
    states = res.free_state.astype(np.float64)
    before = [a.W_view.astype(np.float64) for a in tr.engine.arrays]
    top = np.median([net.free_coupling_max(before, s)[1] for s in states[:4]])
    assert top > 0.1  # the gain makes the cap bite
    tr._hold_free_coupling(states)
    after = [a.W_view.astype(np.float64) for a in tr.engine.arrays]
    assert tr.counters.coupling_top == pytest.approx(top) and tr.counters.coupling_scalings == 1
    np.testing.assert_array_equal(after[0], before[0])  # from the input: not part of the coupling
    for e, b, a in zip(net.state_edges[1:], before[1:], after[1:]):
        np.testing.assert_allclose(a[:-1], b[:-1] * 0.1 / top, rtol=1e-5)
        np.testing.assert_array_equal(a[-1], b[-1])  # bias rows untouched
    np.testing.assert_array_equal(after[-1], before[-1])  # the readout
    assert np.median([net.free_coupling_max(after, s)[1] for s in states[:4]]) == pytest.approx(0.1, rel=1e-4)
    tr._hold_free_coupling(states)  # now at the cap: nothing more
    assert tr.counters.coupling_scalings == 1


def test_free_coupling_cap_runs_in_training_and_is_refused_with_pooling():
    tr = _coupled(0.1)
    row = tr.fit()[0]
    assert row["coupling_scalings"] >= 1 and row["coupling_top"] > 0
    pooled = load_scenario(raw={**RAW, "network": {"kind": "conv_net", "image": [1, 8, 8], "sizes": [64, 10],
                                                   "channels": [3, 4], "kernel": 3, "padding": 1},
                                "ep": {**RAW["ep"], "loss": "cross_entropy"},
                                "train": {"epochs": 1, "free_coupling_cap": 0.9}})
    with pytest.raises(ConfigError, match="max-pools"):
        Trainer(pooled, dataset_for(pooled), pooled.hardware.device.build(), progress=False)
