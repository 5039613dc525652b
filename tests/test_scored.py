"""Scored programs: a row softmax of a few readable score terms, fitted to a head and run in the sandbox."""

import numpy as np
import pytest

from evo import evaluate, program, sandbox
from operators import account, base, canonical, fit, scored, symbolic


@pytest.fixture
def problem(tiny_attention_set):
    sample = fit.Sample(tiny_attention_set.path, 3)
    return sample, scored.Problem(sample, scored.features(False), True)


def test_a_first_token_head_is_fitted_by_a_strong_sink_term(problem):
    sample, prob = problem
    result = scored.fit(prob, sample.targets[1], max_terms=3)
    assert result.terms[0][0].expr == "sink(tokens)" and result.terms[0][1] >= 3
    assert result.iou > 0.9


def test_the_fitted_program_scores_in_the_sandbox_as_the_fit_says(problem, tiny_attention_set):
    sample, prob = problem
    result = scored.fit(prob, sample.targets[0], max_terms=3)   # the previous-token head
    source = scored.source(result)
    program.parse(source)
    assert "softmax_rows(" in source and "previous_token(tokens)" in source
    [ev] = evaluate.evaluate([source], tiny_attention_set.path, workers=1)
    assert ev.ok, ev.error
    assert float(ev.iou[0]) == pytest.approx(result.iou, abs=0.02)   # the sample is the whole tiny set
    words = account.describe(source, True)
    assert words.lower().startswith("a softmax of scores: +") and "on the previous token" in words


def test_canonical_form_keeps_a_scored_program_and_its_account(problem):
    sample, prob = problem
    source = scored.source(scored.fit(prob, sample.targets[1], max_terms=2))
    tidy = canonical.tidy(source, True)
    assert canonical.tidy(tidy, True) == tidy and "from evo.prelude import sink, softmax_rows" in tidy
    assert account.describe(tidy, True) == account.describe(source, True)
    a, b = (sandbox.run(s, [["<bos>", " a", " b"]]) for s in (source, tidy))
    np.testing.assert_array_equal(a.matrices[0], b.matrices[0])


def test_the_offline_operator_makes_scored_children(tiny_attention_set):
    settings = symbolic.Settings(mutate_weights={"fit_scored": 1.0}, crossover_weights={"fit_mix": 1.0})
    op = symbolic.SymbolicOperator(settings, tiny_attention_set.path, True)
    seed = "def attention(tokens):\n    return np.eye(len(tokens))\n"
    parent = base.Parent(id="s", source=seed, iou=np.array([0.1, 0.1, 0.9, 0.1]), length=9)
    children = op.vary([base.Request("mutate", (parent,), (1,), seed=s) for s in range(3)])
    made = [c for c in children if c.source]
    assert made and all("softmax_rows(" in c.source and c.operator == "symbolic.fit_scored" for c in made)
