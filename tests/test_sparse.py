"""Sparse fits (operators.fitting.sparse): the best few readable terms, within a length limit."""

import numpy as np
import pytest

from evo import evaluate, program
from operators.fitting import scored, scored_text, sparse
from operators.shared import canonical
from test_scored import problem  # noqa: F401  (the tiny set's scored problem, shared with test_scored)


def test_near_identical_terms_keep_only_the_most_readable(problem):
    _, prob = problem
    allowed = sparse.readable(prob)
    names = [f.expr for f in prob.keys]
    values = prob.values.astype(np.float64)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            if allowed[a] and allowed[b]:
                corr = np.corrcoef(values[:, a], values[:, b])[0, 1]
                assert not abs(corr) >= sparse.COLLINEAR, (names[a], names[b])
    assert allowed[names.index("sink(tokens)")]   # the shortest of its twins (special_tokens) is kept
    assert all(allowed[i] or np.std(values[:, i]) < 1e-9 or
               any(abs(np.corrcoef(values[:, i], values[:, j])[0, 1]) >= sparse.COLLINEAR
                   for j in np.flatnonzero(allowed[:len(names)])) for i in range(len(names)))


def test_a_sparse_fit_is_at_least_as_good_as_greedy_growth_and_within_its_limits(problem, tiny_attention_set):
    sample, prob = problem
    for head in range(len(sample.targets)):
        greedy = scored.fit(prob, sample.targets[head], max_terms=3)
        found = sparse.fit(prob, sample.targets[head], max_terms=3, max_nodes=60)
        assert len(found.terms) <= 3 and found.iou >= greedy.iou - 0.01
        if not found.terms:
            continue   # no term beats attention spread evenly (the empty program)
        source = canonical.tidy(scored_text.source(found), True)
        assert program.length(source) <= 60
        [ev] = evaluate.evaluate([source], tiny_attention_set.path, workers=1)
        assert ev.ok and float(ev.iou[head]) == pytest.approx(found.iou, abs=0.02)


def test_a_tight_node_limit_gives_a_shorter_program(problem):
    sample, prob = problem
    found = sparse.fit(prob, sample.targets[0], max_terms=4, max_nodes=25)
    assert not found.terms or program.length(canonical.tidy(scored_text.source(found), True)) <= 25
