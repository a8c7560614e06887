"""Augmentation of training batches: translations with zero fill and flips, their statistics, the rules."""
import numpy as np
import pytest

import crossbar_sim.trainer as trainer_mod
from crossbar_sim.augment import augment
from crossbar_sim.config import ConfigError, load_scenario
from crossbar_sim.run import dataset_for
from crossbar_sim.trainer import Trainer

RAW = {"data": {"name": "digits", "train_limit": 96, "batch_size": 32}, "train": {"epochs": 1, "lr": 0.05},
       "ep": {"free_steps": 6, "nudge_steps": 3}}


def _moved(img, dy, dx):
    """The twin: ``img`` (C, H, W) moved by (dy, dx) through a zero-padded copy."""
    C, H, W = img.shape
    pad = np.zeros((C, 3 * H, 3 * W), img.dtype)
    pad[:, H: 2 * H, W: 2 * W] = img
    return pad[:, H - dy: 2 * H - dy, W - dx: 2 * W - dx]


def _images(n, shape=(2, 7, 9), seed=0):
    return np.random.default_rng(seed).random((n, int(np.prod(shape)))).astype(np.float32) + 0.1


def test_each_image_is_its_original_moved_by_offsets_within_the_shift():
    shape, k = (2, 7, 9), 2
    x = _images(200, shape)
    out = augment(x, shape, k, False, np.random.default_rng(3))
    # the draws, repeated: two offsets per image in [-k, k], then a coin each
    offsets = np.random.default_rng(3).integers(-k, k + 1, size=(200, 2))
    for row, got, (dy, dx) in zip(x, out, offsets):
        np.testing.assert_array_equal(got.reshape(shape), _moved(row.reshape(shape), dy, dx))
    assert (np.abs(offsets) == k).any() and (offsets == 0).any()


def test_offsets_are_uniform_over_the_window():
    """An image of one bright pixel in the centre lands at the drawn offset; each of the 2k+1 offsets per axis
    comes up with probability 1/(2k+1): the counts stay within 5 binomial standard deviations."""
    shape, k, n = (1, 9, 9), 3, 7000
    x = np.zeros((n, 81), np.float32)
    x[:, 4 * 9 + 4] = 1.0
    out = augment(x, shape, k, False, np.random.default_rng(11)).reshape(n, 9, 9)
    assert (out.sum((1, 2)) == 1.0).all()  # nothing leaves a frame the window cannot reach past
    rows = out.sum(2).argmax(1) - 4
    cols = out.sum(1).argmax(1) - 4
    p = 1 / (2 * k + 1)
    for offs in (rows, cols):
        counts = np.bincount(offs + k, minlength=2 * k + 1)
        assert np.abs(counts - n * p).max() < 5 * np.sqrt(n * p * (1 - p))
    assert abs(np.corrcoef(rows, cols)[0, 1]) < 0.05


def test_flips_mirror_half_of_the_images():
    shape, n = (1, 5, 6), 4000
    x = _images(n, shape, seed=1)
    out = augment(x, shape, 0, True, np.random.default_rng(5)).reshape(n, *shape)
    img = x.reshape(n, *shape)
    same = (out == img).all((1, 2, 3))
    mirrored = (out == img[..., ::-1]).all((1, 2, 3))
    assert (same ^ mirrored).all()
    assert abs(mirrored.mean() - 0.5) < 5 * np.sqrt(0.25 / n)


def test_no_augmentation_leaves_the_batch_alone():
    x = _images(4, (1, 8, 8))
    sc = load_scenario(raw=RAW)
    assert trainer_mod.augmented(sc.data, x, np.random.default_rng(0)) is x
    np.testing.assert_array_equal(augment(x, (1, 8, 8), 0, False, np.random.default_rng(0)), x)


@pytest.mark.parametrize("data, message", [
    ({"name": "wine", "shift": 1}, "not an image data set"),
    ({"name": "digits", "flip": True, "batch_size": 8}, None),
    ({"name": "digits", "shift": 8}, "off its frame"),
    ({"name": "mnist", "shift": 27}, None),
])
def test_augmentation_rules(data, message):
    raw = {**RAW, "data": data}
    if message is None:
        load_scenario(raw=raw)
    else:
        with pytest.raises(ConfigError, match=message):
            load_scenario(raw=raw)


def _trained_batches(sc, monkeypatch):
    seen = []

    def spy(x, *args):
        out = augment(x, *args)
        seen.append(out.copy())
        return out
    monkeypatch.setattr(trainer_mod, "augment", spy)
    tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    tr.fit()
    return seen, tr


def test_augmented_runs_repeat_with_the_seed_and_train_on_moved_images(monkeypatch):
    sc = load_scenario(raw={**RAW, "data": {**RAW["data"], "shift": 1, "flip": True}})
    a, ta = _trained_batches(sc, monkeypatch)
    b, tb = _trained_batches(sc, monkeypatch)
    assert len(a) == 3
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(ta.engine.Wf, tb.engine.Wf)
    plain = load_scenario(raw=RAW)
    tp = Trainer(plain, dataset_for(plain), plain.hardware.device.build(), progress=False)
    tp.fit()
    assert not np.array_equal(ta.engine.Wf, tp.engine.Wf)


def test_a_checkpoint_without_the_augment_stream_loads(monkeypatch):
    sc = load_scenario(raw=RAW)
    tr = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    state = tr.state()
    del state["rng"]["augment"]
    fresh = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    fresh.load_state(state)
    assert fresh.rng["order"].bit_generator.state == tr.rng["order"].bit_generator.state


def test_the_bp_twin_trains_on_the_same_augmented_images(monkeypatch):
    pytest.importorskip("torch")
    from crossbar_sim.bp_twin import train_bp

    sc = load_scenario(raw={**RAW, "data": {**RAW["data"], "shift": 2}})
    ep_batches, _ = _trained_batches(sc, monkeypatch)
    seen = []
    monkeypatch.setattr(trainer_mod, "augment", lambda x, *a: seen.append(augment(x, *a)) or seen[-1])
    train_bp(sc, dataset_for(sc), progress=False)
    assert len(seen) == len(ep_batches) == 3
    for x, y in zip(seen, ep_batches):
        np.testing.assert_array_equal(x, y)
