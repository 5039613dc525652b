"""Benchmark: how far one round of weight fitting lifts the seeds, and what it costs.

For every head, asks the offline operator for a `fit_weight` child of the head's best seed
and a `fit_mix` child of its two best seeds, evaluates all children on the full attention
set (and on a second, held-out set when given), and prints the mean best-fit IoU over
heads of the seeds alone and of seeds plus children, their difference, and fits per second.

    python bench/symbolic.py                         # default model, built-in search split
    python bench/symbolic.py --set PATH --held-out PATH --workers 2
"""

import argparse
import pathlib
import time

import numpy as np

from evo import evaluate
from operators import base
from operators.edits import symbolic

SEEDS = pathlib.Path(__file__).resolve().parents[1] / "seeds"


def scores(sources: list[str], aset_path, workers: int) -> np.ndarray:
    """Returns (P, K) IoU, 0 for failed programs."""
    results = evaluate.evaluate(sources, aset_path, workers=workers)
    k = next(len(r.iou) for r in results if r.ok)
    return np.stack([r.iou if r.ok else np.zeros(k) for r in results])


def requests(names: list[str], sources: list[str], iou: np.ndarray) -> list[base.Request]:
    """Returns per head a fit_weight request on its best seed and a fit_mix on its best two."""
    out = []
    for k in range(iou.shape[1]):
        order = np.argsort(-iou[:, k])
        a, b = (base.Parent(names[i], sources[i], iou[i], 0) for i in order[:2])
        out.append(base.Request("mutate", (a,), (k,), 2 * k))
        out.append(base.Request("crossover", (a, b), (k,), 2 * k + 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", help="attention set to fit on (default: the default model's search split)")
    parser.add_argument("--held-out", help="second attention set to score on (default: validation split)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.set is None or args.held_out is None:
        from evo import capture
        args.set = args.set or capture.ensure().path
        args.held_out = args.held_out or capture.ensure(split="validation").path
    names = sorted(p.stem for p in SEEDS.glob("*.py"))
    sources = [(SEEDS / f"{n}.py").read_text() for n in names]
    seed_iou = scores(sources, args.set, args.workers)
    only = {"mutate_weights": {k: float(k == "fit_weight") for k in symbolic.MUTATE_WEIGHTS},
            "crossover_weights": {k: float(k == "fit_mix") for k in symbolic.CROSSOVER_WEIGHTS}}
    op = symbolic.SymbolicOperator(symbolic.Settings(**only), pathlib.Path(args.set))
    reqs = requests(names, sources, seed_iou)
    start = time.perf_counter()
    children = op.vary(reqs)
    seconds = time.perf_counter() - start
    made = [c.source for c in children if c.source]
    print(f"children: {len(made)} of {len(reqs)} requests, {len(reqs) / seconds:.1f} fits/s "
          f"({seconds:.1f} s, sandbox runs included)")
    for label, path in (("fit set", args.set), ("held-out", args.held_out)):
        before = scores(sources, path, args.workers) if path != args.set else seed_iou
        after = np.vstack([before, scores(made, path, args.workers)]) if made else before
        b, a = before.max(axis=0).mean(), after.max(axis=0).mean()
        print(f"{label}: mean best-fit IoU seeds {b:.3f}, seeds + fitted children {a:.3f} "
              f"(+{a - b:.3f}, ratio {a / b:.3f}); heads >= 0.7: {(before.max(0) >= 0.7).sum()} -> "
              f"{(after.max(0) >= 0.7).sum()} of {before.shape[1]}")


if __name__ == "__main__":
    main()
