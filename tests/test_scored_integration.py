"""Scored programs on the real default model: the linguistic terms, and wide fits over terms per kind of
query word, earn their place on real heads."""

from __future__ import annotations

import numpy as np
import pytest

from evo import capture, linguistic
from operators.fitting import fit, scored
from operators.shared import score_terms


@pytest.mark.integration
@pytest.mark.skipif(not linguistic.available(), reason="the linguistic extra is not installed")
def test_linguistic_terms_fit_gemma_heads_better_than_positions_alone_on_held_out_sentences():
    sets = [capture.ensure(model="gemma-3-270m", split=split) for split in ("search", "validation")]
    for aset in sets:
        linguistic.ensure(aset)
        linguistic.preload(aset.path)
    train, held = fit.Sample(sets[0].path, 24), fit.Sample(sets[1].path, 60)
    rich, plain = score_terms.features(True), score_terms.features(False)
    wide = fit.Sample(sets[0].path, 64)
    heads = range(1, 72, 12)   # six heads across the layers
    scores = {}
    runs = (("linguistic", rich, train, lambda p, t: scored.fit(p, t, max_terms=8)),
            ("base", plain, train, lambda p, t: scored.fit(p, t, max_terms=8)),
            ("wide", rich, wide, lambda p, t: scored.fit_wide(p, t, max_terms=40)))
    for name, feats, sample, fit_one in runs:
        queries = score_terms.queries(name == "wide")
        prob, test = scored.Problem(sample, feats, True, queries), scored.Problem(held, feats, True, queries)
        index = {f.expr: i for i, f in enumerate(prob.feats)}
        found = []
        for h in heads:
            result = fit_one(prob, sample.targets[h])
            idx, w = [index[f.expr] for f, _ in result.terms], np.array([w for _, w in result.terms])
            found.append(test.iou(test.attention(w, idx), np.where(test.valid, held.targets[h], 0.0)))
        scores[name] = float(np.mean(found))
    assert scores["linguistic"] > scores["base"] + 0.003, scores   # 8 terms each; base has word_endings too
    assert scores["wide"] > scores["linguistic"] + 0.003, scores   # terms per kind of query word, chosen at once
