"""Shares and families on the real default model, checked against an independent count."""

import pathlib

import numpy as np
import pytest

from evo import capture, evaluate
from evo.explanation import families, measure, patterns, shares

SEEDS = pathlib.Path(__file__).resolve().parents[1] / "seeds"


@pytest.mark.integration
def test_shares_match_an_independent_count_on_gemma_heads_and_a_program():
    aset = capture.ensure(model="gemma-3-270m", split="search")
    text, mats = measure.text_of(aset.path, 24)
    got = shares.of(text, mats)                                        # (K, P)
    source = (SEEDS / "sink_previous.py").read_text()
    outs, error = evaluate.outputs(source, text.tokens, True)
    assert outs is not None, error
    program = shares.of(text, outs)[0]
    first, prev = patterns.NAMES.index("first"), patterns.NAMES.index("previous")
    for k, row in enumerate(got):
        # independently: attention on key 0, and on key i-1 for rows i >= 2 (row 1's previous is key 0)
        direct_first = np.mean([m[k][:, 0].mean() for m in mats])
        direct_prev = np.mean([np.mean([m[k][i, i - 1] if i >= 2 else 0.0 for i in range(len(m[k]))]) for m in mats])
        assert abs(row[first] - direct_first) < 0.02 and abs(row[prev] - direct_prev) < 0.02, k
    direct = np.mean([o[:, 0].mean() for o in outs])
    assert abs(program[first] - direct) < 0.02
    named = families.all_of(got, shares.classes(text, mats))
    for k, row in enumerate(got):
        if row[first] >= 0.8:
            assert named[k] == "sink"
        if row[prev] >= 0.5:
            assert named[k] in ("previous-token", "sink")


@pytest.mark.integration
def test_content_shares_match_an_independent_count_on_gemma_heads():
    from evo import affinity

    aset = capture.ensure(model="gemma-3-270m", split="search")
    affinity.ensure(aset)
    text, mats = measure.text_of(aset.path, 12)
    own, even = shares.content(text, mats)
    kept = affinity.stored(aset, 12)
    for k in (0, 1, 33):
        on = off = 0.0
        for a, m in zip(kept, mats):
            for i in range(1, len(m[k])):
                j = 1 + int(np.argmax(a[k][i, 1:i + 1]))       # the earlier key off the first token it favours
                on, off = on + m[k][i, j], off + m[k][i, 1:i + 1].sum()
        assert abs(own[k] - on / off) < 1e-6, k
    assert (own > even).mean() > 0.9        # most heads go where the tokens alone point more than chance does
