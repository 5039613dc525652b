"""How the held-out mean best-fit IoU of a run grows with its budget.

For each budget N, takes the programs on any head's IoU/length front among the run's
first N evaluated programs (what `evo export` would have written at N), scores them on
another split's attention set, and prints the mean over heads of the best IoU next to the
seeds' figure on that split, as a difference and a ratio.

    python bench/search_budget.py runs/g500 --split validation --budgets 100 250 500
"""

from __future__ import annotations

import argparse

import numpy as np

from evo import capture, evaluate, run
from evo.search import archive, checkpoint, selection


def fronts_at(arch: archive.Archive, n: int) -> list[int]:
    """Returns the archive indices on any head's IoU/length front among the first n programs."""
    iou, lengths, ok = arch.iou[:n], arch.lengths[:n], arch.ok[:n]
    return sorted({i for k in range(arch.n_heads) for i in selection.front_2d(iou[:, k], lengths, ok)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 250, 500])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    config, state = run.load_config(args.run), checkpoint.load(args.run)
    arch = archive.Archive.from_state(state["archive"])
    aset = capture.ensure(model=config.model, corpus_path=config.corpus, split=args.split,
                          max_tokens=config.sentence_tokens)
    wanted = sorted({i for n in args.budgets for i in fronts_at(arch, min(n, len(arch)))})
    seeds = [i for i, r in enumerate(arch.records) if r.operator == "seed"]
    todo = sorted(set(wanted) | set(seeds))
    results = evaluate.evaluate([arch.records[i].source for i in todo], aset.path, workers=args.workers)
    held = {i: (r.iou if r.ok else np.zeros(arch.n_heads)) for i, r in zip(todo, results)}
    base = np.max([held[i] for i in seeds], axis=0).mean()
    print(f"run {args.run}: {len(arch)} programs; held-out split {args.split}, {len(aset)} sentences")
    print(f"seeds: mean best-fit IoU {base:.4f}")
    for n in args.budgets:
        n = min(n, len(arch))
        front = fronts_at(arch, n)
        search_fig = arch.iou[:n].max(0).mean()
        figure = np.max([held[i] for i in front], axis=0).mean()
        print(f"budget {n:5d}: {len(front):4d} front programs, search split {search_fig:.4f}, "
              f"{args.split} {figure:.4f}, vs seeds +{figure - base:.4f} (x{figure / base:.3f})")


if __name__ == "__main__":
    main()
