"""One rejected scenario per validation rule, with its message; the quickstart is accepted as written."""
import copy
from pathlib import Path

import pytest
import yaml

from crossbar_sim.config import ConfigError, load_scenario

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = yaml.safe_load((ROOT / "scenarios" / "quickstart.yaml").read_text())


def test_quickstart_is_accepted_as_written():
    sc = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    assert sc.network.sizes == [64, 100, 10] and sc.hardware.device.model == "soft_bounds"
    assert sc.hardware.device.params.bits == 4 and sc.hardware.update.rounding == "stochastic"
    assert sc.ep.tol == 1e-4 and sc.compare_ideal is True


SCENARIOS = sorted(p.relative_to(ROOT) for p in [*(ROOT / "scenarios").glob("*.yaml"),
                                                  *(ROOT / "benchmarks" / "seeds").rglob("*.yaml")])


@pytest.mark.parametrize("path", SCENARIOS, ids=str)
def test_every_shipped_scenario_survives_a_round_trip_through_its_resolved_form(path):
    """A run writes its resolved scenario (config.yaml); reading it back (a resume, a sweep's rerun) must give
    the same scenario: every default the schema fills in must itself be valid."""
    sc = load_scenario(ROOT / path)
    again = load_scenario(raw=yaml.safe_load(yaml.safe_dump(sc.to_dict())))
    assert again.to_dict() == sc.to_dict()


def _with(path, value):
    raw = copy.deepcopy(QUICKSTART)
    node = raw
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return raw


REJECTED = [
    # (key path, bad value, expected message fragment)
    ("hardware.device.bits", "four", "hardware.device.bits: expected an integer from 1 to 16, got 'four'"),
    ("hardware.device.bits", 17, "hardware.device.bits: expected an integer from 1 to 16, got 17"),
    ("hardware.device.colour", 1, "hardware.device.colour: unknown parameter of device model 'soft_bounds'"),
    ("hardware.device.model", "unobtainium", "hardware.device.model: unknown device model 'unobtainium'"),
    ("hardware.device.write_noise", -0.1, "hardware.device.write_noise: expected a number >= 0"),
    ("hardware.device.stuck_fraction", 2, "hardware.device.stuck_fraction: expected a number in [0, 1]"),
    ("hardware.tile.rows", 0, "hardware.tile.rows: expected an integer >= 1, got 0"),
    ("hardware.tile.adc_bits", 2.5, "hardware.tile.adc_bits: expected an integer from 0 to 24, got 2.5"),
    ("hardware.tile.w_max", 0, "hardware.tile.w_max: expected a number > 0"),
    ("hardware.update.rounding", "floor", "hardware.update.rounding: expected one of round, stochastic, got 'floor'"),
    ("hardware.tiles", {}, "hardware.tiles: unknown key"),
    ("ep.estimator", "two_sided", "ep.estimator: expected one of one_sided, random_sign, centered"),
    ("ep.dynamics", "langevin", "ep.dynamics: expected one of euler, fixed_point, coordinate"),
    ("ep.loss", "hinge", "ep.loss: expected one of mse, cross_entropy"),
    ("ep.beta", 0, "ep.beta: expected a number > 0, got 0"),
    ("ep.free_steps", "20", "ep.free_steps: expected an integer >= 1, got '20'"),
    ("ep.persistent", "yes", "ep.persistent: expected true or false, got 'yes'"),
    ("ep.eps", 1.5, "ep.eps: expected a number in (0, 1], got 1.5"),
    ("ep.omega", 2.0, "ep.omega: expected a number in (0, 2), got 2.0"),
    ("data.name", "cifar10", "data.name: expected one of digits, wine, diabetes, mnist, fashion-mnist, got 'cifar10'"),
    ("data.batch_size", 0, "data.batch_size: expected an integer >= 1, got 0"),
    ("data.test_fraction", 1.5, "data.test_fraction: expected a number in (0, 1], got 1.5"),
    ("network.sizes", [], "network.sizes: expected a non-empty list of integers"),
    ("network.sizes", [64, "x", 10], "network.sizes[1]: expected an integer >= 1, got 'x'"),
    ("network.activation", "tanh", "network.activation: expected one of hard_sigmoid"),
    ("network.kind", "conv", "network.kind: expected one of layered, small_world, hopfield_resnet, conv_net, got 'conv'"),
    ("network.p", 1.5, "network.p: expected a number from 0 to 1, got 1.5"),
    ("network.rewiring", "swap", "network.rewiring: expected one of rewire, add, got 'swap'"),
    ("train.epochs", 0, "train.epochs: expected an integer >= 1, got 0"),
    ("train.lr", "fast", "train.lr: expected a number >= 0 or a non-empty list of numbers, got 'fast'"),
    ("train.lr", [0.1, 0.2, 0.3], "train.lr: expected one rate per layer pair (2: the matrix into each layer), got 3"),
    ("seed", -1, "seed: expected an integer >= 0, got -1"),
    ("compare_ideal", 1, "compare_ideal: expected true or false, got 1"),
    ("extra", 1, "extra: unknown key; known keys here: name, seed"),
]


@pytest.mark.parametrize("path,value,message", REJECTED, ids=[f"{p}={v!r}" for p, v, _ in REJECTED])
def test_rejected(path, value, message):
    with pytest.raises(ConfigError) as err:
        load_scenario(raw=_with(path, value))
    assert message in str(err.value)


def test_a_regression_set_needs_the_mse_loss():
    with pytest.raises(ConfigError, match="ep.loss: diabetes is a regression set"):
        load_scenario(raw={"data": {"name": "diabetes"}, "network": {"sizes": [10, 10, 1]},
                           "ep": {"loss": "cross_entropy"}})


def test_mse_needs_two_layers_and_cross_entropy_three():
    with pytest.raises(ConfigError, match="network.sizes: the cross_entropy loss needs at least 3 layers"):
        load_scenario(raw=_with("network.sizes", [64, 10]) | {"ep": {"loss": "cross_entropy"}})


def test_overrides_and_their_errors(tmp_path):
    path = ROOT / "scenarios" / "quickstart.yaml"
    sc = load_scenario(path, ["hardware.device.bits=6", "train.lr=[0.1, 0.05]", "ep.persistent=true"], seed=5)
    assert sc.hardware.device.params.bits == 6 and sc.train.lr == [0.1, 0.05] and sc.ep.persistent and sc.seed == 5
    with pytest.raises(ConfigError, match="--set hardware.device.bits: expected key.path=value"):
        load_scenario(path, ["hardware.device.bits"])
    with pytest.raises(ConfigError, match="hardware.device.bits: expected an integer"):
        load_scenario(path, ["hardware.device.bits=four"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_scenario(bad)
    with pytest.raises(ConfigError, match="cannot read scenario"):
        load_scenario(tmp_path / "missing.yaml")
