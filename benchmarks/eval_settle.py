"""Test accuracy of a trained run against the length of the free phase at inference.

A run trains and evaluates with ``ep.free_steps`` steps of relaxation (a cap when ``ep.tol`` does not stop it
earlier). This loads the run's trained network (``crossbar_sim.run.load_run``: a finished run's final state, or
the last finished epoch of one still running) and evaluates the test set again with other caps and, optionally,
other over-relaxation factors, to show whether the reported accuracy is that of settled equilibria.

    python benchmarks/eval_settle.py benchmarks/results/deep/conv_ideal_6k --steps 30,60,120,240 \\
        --out benchmarks/results/deep/eval_settle_conv_6k.md
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numba

from crossbar_sim.run import load_run


def numbers(kind):
    def parse(text: str) -> list:
        try:
            return [kind(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    return parse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a run directory (config.yaml and checkpoint.pkl)")
    ap.add_argument("--steps", type=numbers(int), default=[30, 60, 120, 240], help="free-phase caps, e.g. 30,60,120")
    ap.add_argument("--omega", type=numbers(float), default=None, help="over-relaxation factors (default: the run's)")
    ap.add_argument("--part", default="crossbar", choices=["crossbar", "ideal"])
    ap.add_argument("--limit", type=int, default=None, help="the first N test samples only")
    ap.add_argument("--out", default=None, help="default: RUN/eval_settle.md")
    args = ap.parse_args()
    run = Path(args.run)
    base = load_run(run, args.part)
    sc = base.scenario
    omegas = args.omega or [sc.ep.omega]
    data = base.data
    x, y = data.x_test[: args.limit], data.y_test[: args.limit]
    lines = [f"# {run}, {args.part} part, {base.trained_to()}: test accuracy against the free-phase cap",
             "",
             f"{len(x)} test samples; the run's setting: {sc.ep.free_steps} steps, omega {sc.ep.omega}, "
             f"tol {sc.ep.tol:g}, {sc.ep.dynamics} dynamics; {platform.machine()}, {numba.get_num_threads()} threads",
             "", f"| free steps (cap) | omega | test {base.metric} | mean steps run | seconds |", "|---|---|---|---|---|"]
    print("\n".join(lines))
    for omega in omegas:
        for steps in args.steps:
            trainer = load_run(run, args.part, [f"ep.free_steps={steps}", f"ep.omega={omega}"])
            t0 = time.perf_counter()
            score = trainer.evaluate(x, y)
            seconds = time.perf_counter() - t0
            row = f"| {steps} | {omega:g} | {score:.4f} | {trainer.eval_mean_steps:.1f} | {seconds:.1f} |"
            lines.append(row)
            print(row, flush=True)
    out = Path(args.out) if args.out else run / "eval_settle.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
