"""Scored programs: a row softmax of a few readable score terms, fitted to a head and run in the sandbox."""

import numpy as np
import pytest

from evo import evaluate, program, sandbox
from operators import account, base, canonical, fit, score_terms, scored, symbolic


@pytest.fixture
def problem(tiny_attention_set):
    sample = fit.Sample(tiny_attention_set.path, 3)
    return sample, scored.Problem(sample, score_terms.features(False), True)


def test_a_first_token_head_is_fitted_by_a_strong_sink_term(problem):
    sample, prob = problem
    result = scored.fit(prob, sample.targets[1], max_terms=3)
    assert result.terms[0][0].expr in ("sink(tokens)", "sink_later(tokens)") and result.terms[0][1] >= 2
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
    assert canonical.tidy(tidy, True) == tidy and "from evo.prelude import " in tidy and "softmax_rows" in tidy
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


def test_the_iou_gradient_matches_finite_differences(problem):
    sample, prob = problem
    target = np.where(prob.valid, sample.targets[2], 0.0)
    idx, w = [0, 3, 7], np.array([0.5, -0.3, 1.0])

    def score(v):
        return prob.iou(prob.attention(v, idx), target)

    g = np.tensordot(prob.x[idx], scored._score_gradient(prob.attention(w, idx), target, prob.row_weight, True),
                     axes=([1, 2], [0, 1]))
    eps = 1e-5
    numeric = [(score(w + eps * e) - score(w - eps * e)) / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(g, numeric, rtol=1e-3, atol=1e-6)


def test_a_scored_program_reads_back_as_its_terms(problem):
    sample, prob = problem
    result = scored.fit(prob, sample.targets[0], max_terms=3)
    tidy = canonical.tidy(scored.source(result), True)
    read = scored.read(tidy, prob)
    assert [(prob.feats[i].expr, w) for i, w in read] == [(f.expr, w) for f, w in result.terms]
    negative = "def attention(tokens):\n    scores = -1.5 * punctuation(tokens)\n    scores -= 2 * sink(tokens)\n" \
               "    return softmax_rows(scores)\n"
    assert [(prob.feats[i].expr, w) for i, w in scored.read(negative, prob)] == [
        ("punctuation(tokens)", -1.5), ("sink(tokens)", -2.0)]
    assert scored.read(negative.replace("-1.5", "True"), prob) is None
    assert scored.read("def attention(tokens):\n    return sink(tokens)\n", prob) is None
    assert scored.read(tidy.replace("softmax_rows(scores)", "rows(scores)"), prob) is None


def test_a_fit_grows_from_its_starting_terms_and_never_scores_worse(problem):
    sample, prob = problem
    first = scored.fit(prob, sample.targets[0], max_terms=1)
    start = [(prob.feats.index(f), w) for f, w in first.terms]
    grown = scored.fit(prob, sample.targets[0], max_terms=3, start=start)
    assert grown.iou >= first.iou - 1e-3 and len(grown.terms) >= len(first.terms)
    assert first.terms[0][0] in [f for f, _ in grown.terms]


def test_terms_outside_the_allowed_ones_never_join(problem):
    sample, prob = problem
    allowed = np.array([f.expr != "previous_token(tokens)" for f in prob.feats])
    result = scored.fit(prob, sample.targets[0], max_terms=3, allowed=allowed)
    assert "previous_token(tokens)" not in [f.expr for f, _ in result.terms]


def test_prune_drops_terms_that_carry_nothing_and_keeps_the_fit(problem):
    sample, prob = problem
    index = {f.expr: i for i, f in enumerate(prob.feats)}
    full = scored.fit(prob, sample.targets[0], max_terms=2)
    terms = [(index[f.expr], w) for f, w in full.terms] + [(index["digits(tokens)"], 0.1)]
    pruned = scored.prune(prob, sample.targets[0], terms, loss=0.01)
    assert len(pruned.terms) < len(terms) and pruned.iou >= full.iou - 0.011
    assert "digits(tokens)" not in [f.expr for f, _ in pruned.terms]


def test_the_offline_operator_prunes_and_grows_scored_parents(tiny_attention_set):
    settings = symbolic.Settings(mutate_weights={"fit_prune": 1.0}, crossover_weights={"fit_scored": 1.0})
    op = symbolic.SymbolicOperator(settings, tiny_attention_set.path, True)
    prob = op._scored_problem()
    index = {f.expr: i for i, f in enumerate(prob.feats)}
    fitted = scored.fit(prob, op.fitter.sample.targets[0], max_terms=2)
    padded = scored.Fit(fitted.terms + ((prob.feats[index["digits(tokens)"]], 0.1),), fitted.iou)
    parent = base.Parent(id="p", source=canonical.tidy(scored.source(padded), True),
                         iou=np.array([0.9, 0.1, 0.1, 0.1]), length=30)
    [pruned] = op.vary([base.Request("mutate", (parent,), (0,), seed=1)])
    assert pruned.source and pruned.operator == "symbolic.fit_prune", pruned.error
    assert "digits(tokens)" not in pruned.source and "softmax_rows(scores)" in pruned.source
    other = base.Parent(id="q", source=pruned.source, iou=np.array([0.1, 0.9, 0.1, 0.1]), length=20)
    [grown] = op.vary([base.Request("crossover", (parent, other), (1,), seed=2)])
    assert grown.source and grown.operator == "symbolic.fit_scored" and "grew scored parents" in grown.meta["edit"]


def test_a_scored_program_inside_a_mix_is_named_after_its_strongest_raise():
    from operators import mixing

    a = '"""A softmax of scores: -1.2 on punctuation; +3.1 on the first token."""\n\n\n' \
        "def attention(tokens):\n    scores = -1.2 * punctuation(tokens)\n    scores += 3.1 * sink(tokens)\n" \
        "    return softmax_rows(scores)\n"
    merged = canonical.write(mixing.merge(mixing.read(a, True), mixing.read(SEED_PREVIOUS, True), 0.5), True)
    assert "def _first_token_scores(tokens):" in merged and "_softmax_scores" not in merged
    ev = sandbox.run(merged, [["<bos>", " a", ",", " b"]])
    assert ev.ok, ev.error


SEED_PREVIOUS = "def attention(tokens):\n    return previous_token(tokens)\n"


def test_an_encoder_gets_terms_for_keys_ahead_and_a_decoder_does_not():
    causal = {f.expr for f in score_terms.features(False, causal=True)}
    encoder = {f.expr for f in score_terms.features(False, causal=False)}
    assert encoder - causal == {"next_token(tokens)", "steps_back(tokens, -2)", "steps_back(tokens, -3)",
                                "steps_back(tokens, -4)"}
    ahead = next(f for f in score_terms.features(False, causal=False) if f.expr == "steps_back(tokens, -2)")
    assert ahead.meaning == "on the token 2 ahead" and score_terms.values(ahead, ["a", "b", "c"])[0, 2] == 1
