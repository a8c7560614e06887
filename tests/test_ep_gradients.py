"""EP's estimate against autograd BPTT through the same relaxation, in the ideal limit."""
import numpy as np
import pytest

from crossbar_sim.config import EPConfig
from crossbar_sim.engine import Engine
from crossbar_sim.ep import EPStep
from crossbar_sim.tiles import Periphery
from device_models.ideal import Ideal
from networks.activations import make_activation
from networks.layered import LayeredNetwork
from tests.helpers.bptt import bptt_gradient

pytest.importorskip("torch")


def _setup(loss, seed=3):
    g = np.random.default_rng(seed)
    sizes = (16, 12, 10, 6)
    net = LayeredNetwork(sizes, make_activation("hard_sigmoid"), "state" if loss == "mse" else "softmax")
    weights = net.init_weights(g)
    for W in weights:
        W[:-1] *= 1.5
        W[-1] = g.uniform(0.0, 0.3, W.shape[1])  # positive biases keep most units inside the box
    x = g.random((40, sizes[0])).astype(np.float32)
    y = np.eye(sizes[-1], dtype=np.float32)[g.integers(0, sizes[-1], 40)]
    engine = Engine(net, weights, Ideal(), Periphery(), "round", np.random.default_rng(0))
    return net, engine, weights, x, y


def _estimate(engine, x, y, estimator, beta):
    ep = EPConfig(estimator=estimator, beta=beta, dynamics="coordinate", free_steps=400, nudge_steps=400, tol=0.0)
    S0 = np.zeros(len(x) * engine.state_size(), np.float32)
    est, _ = EPStep(engine, ep).estimate(x, y, S0, np.random.default_rng(0))
    return np.concatenate([e.ravel() for e in est])


def _cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_centered_ep_matches_bptt(loss):
    net, engine, weights, x, y = _setup(loss)
    ref = np.concatenate([g.ravel() for g in bptt_gradient(x, y, weights, net.n_state_layers, loss, 400)])
    est = _estimate(engine, x, y, "centered", 0.01)
    assert _cosine(est, ref) >= 0.99
    assert np.linalg.norm(est - ref) / np.linalg.norm(ref) < 0.1


def test_one_sided_bias_exceeds_centered():
    """Laborieux et al. 2021: one-sided EP is biased at first order in beta, centered EP at second order."""
    net, engine, weights, x, y = _setup("mse")
    ref = np.concatenate([g.ravel() for g in bptt_gradient(x, y, weights, net.n_state_layers, "mse", 400)])
    # Beyond beta ~ 0.05 units of this net start crossing the box's kinks and both estimates degrade.
    errs = []
    for beta in (0.005, 0.01, 0.02):
        err = {e: np.linalg.norm(_estimate(engine, x, y, e, beta) - ref) / np.linalg.norm(ref)
               for e in ("one_sided", "centered")}
        assert err["one_sided"] > 2 * err["centered"], (beta, err)
        errs.append(err)
    # First-order bias: the one-sided error grows about in proportion to beta.
    assert errs[2]["one_sided"] > 3 * errs[0]["one_sided"]


def test_nudged_phases_can_run_their_own_dynamics():
    """``ep.nudge_dynamics``: free phase by one dynamics, nudged phases by another, from the free equilibrium."""
    from crossbar_sim.ep import grad_difference

    net, engine, weights, x, y = _setup("mse")
    beta = 0.5
    ep = EPConfig(estimator="one_sided", beta=beta, dynamics="coordinate", nudge_dynamics="euler", free_steps=60,
                  nudge_steps=3, tol=0.0, eps=0.5)
    S0 = np.zeros(len(x) * engine.state_size(), np.float32)
    est, _ = EPStep(engine, ep).estimate(x, y, S0, np.random.default_rng(0))
    S, B = S0.copy(), len(x)
    xq = engine.input_dac(x)
    engine.settle(xq, y, S, 0.0, 60, "coordinate", 0.0, 0.5)
    free = [layer.copy() for layer in engine.layers(S, B)]
    engine.settle(xq, y, S, beta, 3, "euler", 0.0, 0.5)  # three Euler steps: not converged
    want = [d / beta for d in grad_difference(engine, x, engine.layers(S, B), free)]
    for got, ref in zip(est, want):
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)
    # run to convergence, the Euler nudged phase reaches the coordinate one's equilibrium
    both = lambda nd, steps: _flat(EPStep(engine, EPConfig(  # noqa: E731
        estimator="one_sided", beta=beta, dynamics="coordinate", nudge_dynamics=nd, free_steps=200,
        nudge_steps=steps, tol=0.0)).estimate(x, y, S0, np.random.default_rng(0))[0])
    short, converged, coordinate = both("euler", 3), both("euler", 400), both(None, 200)
    assert np.linalg.norm(converged - coordinate) < 1e-3 * np.linalg.norm(coordinate)
    assert np.linalg.norm(short - coordinate) > 0.05 * np.linalg.norm(coordinate)


def _flat(est):
    return np.concatenate([e.ravel() for e in est])
