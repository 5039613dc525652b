"""What one scored program per head can reach: a sparse fit by number of terms, scored on held-out text.

For every k-th head of the default model, `operators.scored.fit` fits a scored program on a
sample of the search split (the sample the offline operator fits on) with at most N terms,
for each N asked, and scores it on the validation split; prints the mean per N, with and
without the linguistic terms, and the time per fit. This bounds what `fit_scored` can give
a search over this vocabulary (a search's best per head is close to it).

    python bench/scored_fit.py [--terms 4,8,16] [--every 6] [--sentences 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from evo import capture, linguistic
    from operators import fit, score_terms, scored

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--terms", default="4,8,16", help="comma-separated term counts (default: 4,8,16)")
    p.add_argument("--every", type=int, default=6, help="fit every k-th head (default: 6)")
    p.add_argument("--sentences", type=int, default=32, help="fit sample size (default: 32)")
    args = p.parse_args()
    sets = [capture.ensure(split=split) for split in ("search", "validation")]
    vocabularies = [False] + ([True] if linguistic.available() else [])
    if vocabularies[-1]:
        for aset in sets:
            linguistic.ensure(aset)
            linguistic.preload(aset.path)
    train, held = fit.Sample(sets[0].path, args.sentences), fit.Sample(sets[1].path, len(sets[1]))
    heads = range(0, train.n_heads_total, args.every)
    for rich in vocabularies:
        feats = score_terms.features(rich, sets[0].causal)
        prob, test = scored.Problem(train, feats, sets[0].causal), scored.Problem(held, feats, sets[0].causal)
        index = {f.expr: i for i, f in enumerate(feats)}
        for n in (int(x) for x in args.terms.split(",")):
            found, t = [], time.perf_counter()
            for h in heads:
                result = scored.fit(prob, train.targets[h], max_terms=n)
                idx, w = [index[f.expr] for f, _ in result.terms], np.array([w for _, w in result.terms])
                found.append(test.iou(test.attention(w, idx), np.where(test.valid, held.targets[h], 0.0)))
            per = (time.perf_counter() - t) / len(found)
            print(f"{'linguistic' if rich else 'base'} terms ({len(feats)}), at most {n}: validation mean IoU "
                  f"{np.mean(found):.4f} over {len(found)} heads, {per:.1f} s a fit", flush=True)


if __name__ == "__main__":
    main()
