"""What one scored program per head can reach: a sparse fit by number of terms, scored on held-out text.

For every k-th head of the default model, `operators.fitting.scored.fit` (greedy growth, `fit_scored`)
fits a scored program on a sample of the search split (the sample the offline operator fits
on) with at most N terms, for each N asked, and `operators.fitting.scored.fit_wide` (`fit_wide`) one of
at most W terms on its larger sample; each is scored on the validation split. Prints the mean
per fit, with and without the linguistic terms, and the time per fit: what `fit_scored` and
`fit_wide` can give a search over this vocabulary.

    python bench/scored_fit.py [--terms 4,8,16] [--wide 120] [--every 6] [--sentences 32] [--wide-sentences 220]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from evo import capture, linguistic
    from operators.fitting import fit, scored
    from operators.shared import score_terms

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--terms", default="4,8,16", help="comma-separated term counts (default: 4,8,16)")
    p.add_argument("--every", type=int, default=6, help="fit every k-th head (default: 6)")
    p.add_argument("--sentences", type=int, default=32, help="fit sample size (default: 32)")
    p.add_argument("--wide", default="120", help="comma-separated term counts of wide fits (default: 120; '' none)")
    p.add_argument("--wide-sentences", type=int, default=220, help="wide fit sample size (default: 220)")
    args = p.parse_args()
    sets = [capture.ensure(split=split) for split in ("search", "validation")]
    vocabularies = [False] + ([True] if linguistic.available() else [])
    if vocabularies[-1]:
        for aset in sets:
            linguistic.ensure(aset)
            linguistic.preload(aset.path)
    train, held = fit.Sample(sets[0].path, args.sentences), fit.Sample(sets[1].path, len(sets[1]))
    wide = fit.Sample(sets[0].path, args.wide_sentences)
    heads = range(0, train.n_heads_total, args.every)
    for rich in vocabularies:
        feats, queries = score_terms.features(rich, sets[0].causal), score_terms.queries(rich)
        test = scored.Problem(held, feats, sets[0].causal, queries)
        fits = [(f"at most {n}", train, lambda prob, t, n=n: scored.fit(prob, t, max_terms=n))
                for n in (int(x) for x in args.terms.split(",") if x)]
        fits += [(f"wide, at most {n}", wide, lambda prob, t, n=n: scored.fit_wide(prob, t, max_terms=n))
                 for n in (int(x) for x in args.wide.split(",") if x)]
        problems = {}
        for label, sample, fit_one in fits:
            prob = problems.setdefault(id(sample), scored.Problem(sample, feats, sets[0].causal, queries))
            index = {f.expr: i for i, f in enumerate(prob.feats)}
            found, t = [], time.perf_counter()
            for h in heads:
                result = fit_one(prob, sample.targets[h])
                idx, w = [index[f.expr] for f, _ in result.terms], np.array([w for _, w in result.terms])
                found.append(test.iou(test.attention(w, idx), np.where(test.valid, held.targets[h], 0.0)))
            per = (time.perf_counter() - t) / len(found)
            print(f"{'linguistic' if rich else 'base'} terms ({len(prob.feats)}), {label}: validation mean IoU "
                  f"{np.mean(found):.4f} over {len(found)} heads, {per:.1f} s a fit", flush=True)

if __name__ == "__main__":
    main()
