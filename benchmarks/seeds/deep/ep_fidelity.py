"""How close the EP estimate at practical settings is to its small-beta limit, block by block, at a run's
weights.

Loads the checkpoint of a run (its scenario and its weights as the checkpoint holds them: after the last finished
epoch, or part way into the next when a running or stopped run wrote it mid-epoch, as the header says; for a finished
run, the crossbar part's trained state), or a scenario file (its initial weights; ``--set`` overrides apply), takes
``--batch`` training samples, and computes the centered EP estimate for several (beta, free steps, nudged steps),
all with tol 0 (every step run; ``--tol`` sets the settings' tolerance, to see what a run's early stop costs), against a reference at beta ``--ref-beta`` with long phases (and a second reference
at 2.5 times that beta, to show the reference itself is settled). Prints, per setting and block, the cosine to the
reference and the norm ratio, and writes the table to ``--out``.

    python benchmarks/seeds/deep/ep_fidelity.py benchmarks/results/deep/conv_ideal_sgd
    python benchmarks/seeds/deep/ep_fidelity.py benchmarks/seeds/deep/fmnist_resnet13.yaml --batch 50 \\
        --out benchmarks/results/deep/ep_fidelity_resnet13_init.md
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
from pathlib import Path

import numba
import numpy as np

from crossbar_sim.config import load_scenario
from crossbar_sim.ep import EPStep
from crossbar_sim.run import dataset_for, load_run
from crossbar_sim.trainer import Trainer

SETTINGS = [  # (beta, free steps, nudged steps)
    (0.5, 30, 10), (0.5, 100, 10), (0.5, 300, 100), (0.2, 30, 20), (0.2, 100, 20), (0.2, 300, 100),
    (0.1, 150, 50),
]


def setting(text: str) -> tuple[float, int, int]:
    """``BETA,FREE,NUDGED`` as (beta, free steps, nudged steps)."""
    try:
        beta, free, nudged = text.split(",")
        return float(beta), int(free), int(nudged)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BETA,FREE,NUDGED (e.g. 0.5,30,10), got {text!r}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a run directory with config.yaml and checkpoint.pkl, or a scenario file")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                    help="overrides of the scenario (the network's shape must stay the same for a run)")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--ref-beta", type=float, default=0.02)
    ap.add_argument("--ref-steps", type=int, default=300)
    ap.add_argument("--out", default=None, help="default: RUN/ep_fidelity.md")
    ap.add_argument("--tol", type=float, default=0.0,
                    help="the compared settings' phase tolerance (the references always run every step)")
    ap.add_argument("--setting", action="append", type=setting, default=None, metavar="BETA,FREE,NUDGED",
                    help="a setting to compare (repeatable; default: the scenario's and a fixed list)")
    args = ap.parse_args()
    run = Path(args.run)
    at_init = run.is_file()
    if at_init and not args.out:
        raise SystemExit("--out is needed with a scenario file")
    if at_init:
        sc = load_scenario(run, args.overrides)
        trainer = Trainer(sc, dataset_for(sc), sc.hardware.device.build(), progress=False)
    else:
        trainer = load_run(run, overrides=args.overrides)
        sc = trainer.scenario
    data = trainer.data
    eng = trainer.engine
    B = args.batch
    x, y = data.x_train[:B], data.targets(data.y_train[:B])

    def estimate(beta, free, nudge, tol=0.0):
        ep = dataclasses.replace(sc.ep, beta=beta, free_steps=free, nudge_steps=nudge, tol=tol)
        g, _ = EPStep(eng, ep).estimate(x, y, np.zeros(B * eng.state_size(), np.float32), np.random.default_rng(0))
        return g

    def compare(g, ref):
        cos = [float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(g, ref)]
        ratio = [float(np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(g, ref)]
        return cos, ratio

    n = args.ref_steps
    ref = estimate(args.ref_beta, n, n)
    blocks = [f"{e.src}->{e.dst}" for e in eng.edges]
    where = f"{run} {' '.join(args.overrides)}: " + ("initial weights" if at_init else f"weights {trainer.trained_to()}")
    lines = [f"# {where}; {B} training samples; reference: centered EP at beta "
             f"{args.ref_beta}, {n} free and {n} nudged steps; {platform.processor() or platform.machine()}, "
             f"{numba.get_num_threads()} threads; compared settings at tol {args.tol:g}",
             "| beta | free steps | nudged steps | " + " | ".join(f"cosine {b}" for b in blocks) + " | "
             + " | ".join(f"norm ratio {b}" for b in blocks) + " |",
             "|" + "---|" * (3 + 2 * len(blocks))]
    check = estimate(2.5 * args.ref_beta, n, n)
    own = (sc.ep.beta, sc.ep.free_steps, sc.ep.nudge_steps)  # the scenario's own setting first
    settings = [own] + [st for st in SETTINGS if st != own]
    if args.setting:
        settings = args.setting
    for (beta, free, nudge), g in [((2.5 * args.ref_beta, n, n), check)] + \
            [((b, f, s), estimate(b, f, s, args.tol)) for b, f, s in settings]:
        cos, ratio = compare(g, ref)
        lines.append(f"| {beta:g} | {free} | {nudge} | " + " | ".join(f"{c:.3f}" for c in cos) + " | "
                     + " | ".join(f"{r:.2f}" for r in ratio) + " |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    out = Path(args.out) if args.out else run / "ep_fidelity.md"
    out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
