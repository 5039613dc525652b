"""Scored programs: a row softmax of a few readable score terms, fitted to a head and run in the sandbox."""

import ast

import re

import numpy as np
import pytest

from evo import evaluate, linguistic, program, sandbox
from operators.shared import account, canonical, score_terms
from operators import base
from operators.fitting import fit, scored, scored_text
from operators.edits import symbolic


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
    source = scored_text.source(result)
    program.parse(source)
    assert "softmax_rows(" in source and "previous_token(tokens)" in source
    [ev] = evaluate.evaluate([source], tiny_attention_set.path, workers=1)
    assert ev.ok, ev.error
    assert float(ev.iou[0]) == pytest.approx(result.iou, abs=0.02)   # the sample is the whole tiny set
    words = account.describe(source, True)
    assert words.lower().startswith("a softmax of scores: more attention") and "on the previous token" in words
    assert not re.search(r"[+-]\d", words)   # an account never lists weights


def test_canonical_form_keeps_a_scored_program_and_its_account(problem):
    sample, prob = problem
    source = scored_text.source(scored.fit(prob, sample.targets[1], max_terms=2))
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
    prob.values = prob.values.astype(np.float64)   # the formula, checked in double precision
    target = np.where(prob.valid, sample.targets[2], 0.0)
    idx, w = [0, 3, 7], np.array([0.5, -0.3, 1.0])

    def score(v):
        return prob.iou(prob.attention(v, idx), target)

    g = prob.gradient(prob.score_gradient(prob.softmax(w, idx), prob.flat(target), True))[idx]
    eps = 1e-5
    numeric = [(score(w + eps * e) - score(w - eps * e)) / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(g, numeric, rtol=1e-3, atol=1e-6)


def test_a_scored_program_reads_back_as_its_terms(problem):
    sample, prob = problem
    result = scored.fit(prob, sample.targets[0], max_terms=3)
    tidy = canonical.tidy(scored_text.source(result), True)
    read = scored_text.read(tidy, prob)
    assert [(prob.feats[i].expr, w) for i, w in read] == [(f.expr, w) for f, w in result.terms]
    negative = "def attention(tokens):\n    scores = -1.5 * punctuation(tokens)\n    scores -= 2 * sink(tokens)\n" \
               "    return softmax_rows(scores)\n"
    assert [(prob.feats[i].expr, w) for i, w in scored_text.read(negative, prob)] == [
        ("punctuation(tokens)", -1.5), ("sink(tokens)", -2.0)]
    assert scored_text.read(negative.replace("-1.5", "True"), prob) is None
    assert scored_text.read("def attention(tokens):\n    return sink(tokens)\n", prob) is None
    assert scored_text.read(tidy.replace("softmax_rows(scores)", "rows(scores)"), prob) is None


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
    parent = base.Parent(id="p", source=canonical.tidy(scored_text.source(padded), True),
                         iou=np.array([0.9, 0.1, 0.1, 0.1]), length=30)
    [pruned] = op.vary([base.Request("mutate", (parent,), (0,), seed=1)])
    assert pruned.source and pruned.operator == "symbolic.fit_prune", pruned.error
    assert "digits(tokens)" not in pruned.source and "softmax_rows(scores)" in pruned.source
    other = base.Parent(id="q", source=pruned.source, iou=np.array([0.1, 0.9, 0.1, 0.1]), length=20)
    [grown] = op.vary([base.Request("crossover", (parent, other), (1,), seed=2)])
    assert grown.source and grown.operator == "symbolic.fit_scored" and "grew scored parents" in grown.meta["edit"]


def test_a_scored_program_inside_a_mix_is_named_after_its_strongest_raise():
    from operators.shared import mixing

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


def test_a_wide_fit_keeps_at_most_its_terms_and_fits_a_head(problem):
    sample, prob = problem
    result = scored.fit_wide(prob, sample.targets[0], max_terms=4)   # the previous-token head
    assert 1 <= len(result.terms) <= 4 and result.iou > 0.9
    assert "previous_token(tokens)" in [f.expr for f, _ in result.terms]


def test_a_wide_program_prunes_its_weakest_terms_in_a_few_refits(problem, monkeypatch):
    sample, prob = problem
    full = scored.fit(prob, sample.targets[0], max_terms=2)
    index = {f.expr: i for i, f in enumerate(prob.feats)}
    terms = [(index[f.expr], w) for f, w in full.terms]
    terms += [(i, 0.1) for i in range(len(prob.feats)) if i not in {t for t, _ in terms}][:scored.TRIALS + 6]
    calls = []
    descend = scored._descend
    monkeypatch.setattr(scored, "_descend", lambda *a, **k: calls.append(1) or descend(*a, **k))
    pruned = scored.prune(prob, sample.targets[0], terms, loss=0.01)
    assert len(pruned.terms) < len(terms) // 2 and pruned.iou >= full.iou - 0.011
    assert len(calls) < len(terms) * (len(terms) - 1) // 4   # half what one refit per term per round takes


def test_a_long_query_group_is_wrapped_one_term_per_line_and_reads_the_same():
    from operators.shared import rendering

    long = ('def attention(tokens):\n    scores = 2.0 * sink(tokens)\n    scores += query_is(tokens, "NOUN") * ('
            + " + ".join(f"0.{d} * steps_back(tokens, {d})" for d in range(1, 8)) + " - 0.2 * digits(tokens))\n"
            "    return softmax_rows(scores)\n")
    out = rendering.wrapped_sum(long)
    assert max(len(line) for line in out.splitlines()) <= 100 and "\n" + " " * 42 + "- 0.2 * digits" in out
    assert ast.dump(ast.parse(out)) == ast.dump(ast.parse(long))


@pytest.fixture
def annotated(tiny_attention_set):
    if not linguistic.available():
        pytest.skip("the linguistic extra is not installed")
    linguistic.ensure(tiny_attention_set)
    linguistic.preload(tiny_attention_set.path)
    sample = fit.Sample(tiny_attention_set.path, 3)
    return sample, scored.Problem(sample, score_terms.features(True), True, score_terms.queries(True))


def test_a_conditioned_term_scores_only_its_query_words_rows(annotated):
    sample, prob = annotated
    k = len(prob.keys)
    used = sorted({int(c) for c in prob.row_class if c < len(prob.queries)})
    c = used[0]
    t = k + c * k + prob.keys.index(next(f for f in prob.keys if f.expr == "sink(tokens)"))
    feature = prob.feats[t]
    assert feature.expr == f'query_is(tokens, "{prob.queries[c]}") * sink(tokens)'
    expected = sample.pack([score_terms.values(feature, list(tok)) for tok in sample.tokens])
    np.testing.assert_allclose(prob.scores(np.array([1.5]), [t]), 1.5 * expected, atol=1e-6)


def test_the_iou_gradient_of_conditioned_terms_matches_finite_differences(annotated):
    sample, prob = annotated
    prob.values = prob.values.astype(np.float64)
    target = np.where(prob.valid, sample.targets[2], 0.0)
    k = len(prob.keys)
    used = sorted({int(c) for c in prob.row_class if c < len(prob.queries)})
    idx = [0, k + used[0] * k + 1, k + used[-1] * k + 3]
    w = np.array([0.5, -0.7, 1.2])

    def score(v):
        return prob.iou(prob.attention(v, idx), target)

    g = prob.gradient(prob.score_gradient(prob.softmax(w, idx), prob.flat(target), True))[idx]
    numeric = [(score(w + 1e-5 * e) - score(w - 1e-5 * e)) / 2e-5 for e in np.eye(3)]
    np.testing.assert_allclose(g, numeric, rtol=1e-3, atol=1e-6)


def test_a_grouped_scored_program_reads_back_and_speaks_per_kind_of_query_word(annotated):
    sample, prob = annotated
    index = {f.expr: i for i, f in enumerate(prob.feats)}
    det, prev = 'query_is(tokens, "NOUN") * key_is(tokens, "DET")', 'query_is(tokens, "NOUN") * previous_token(tokens)'
    verb = 'query_is(tokens, "VERB") * head_matrix(tokens)'
    terms = ((prob.feats[index["sink(tokens)"]], 3.1), (prob.feats[index[det]], 1.2),
             (prob.feats[index[verb]], -0.9), (prob.feats[index[prev]], 0.8))
    source = canonical.tidy(scored_text.source(scored.Fit(terms, 0.5)), True)
    flat = " ".join(source.split())   # a long group is wrapped, a term per line
    assert "scores += query_is(tokens, 'NOUN') * (1.2 * key_is(tokens, 'DET') + 0.8 * previous_token(tokens))" \
        in flat and "scores -= 0.9 * query_is(tokens, 'VERB') * head_matrix(tokens)" in source
    assert sorted(scored_text.read(source, prob)) == sorted((index[f.expr], w) for f, w in terms)
    words = account.describe(source, True)
    assert "from a noun: more attention on a determiner and on the previous token" in words
    assert "from a verb: less attention if the key is the query word's head" in words
    older = ('def attention(tokens):\n    scores = 1.5 * pos_pair(tokens, "NOUN", "DET")\n'
             '    scores += 0.5 * query_is(tokens, "NOUN") * previous_token(tokens)\n    return softmax_rows(scores)\n')
    assert scored_text.read(older, prob) == [(index[det], 1.5), (index[prev], 0.5)]
    ev = sandbox.run(source, [["<bos>", " The", " dog", " barks", "."]])
    assert ev.ok, ev.error


def test_the_offline_operator_makes_wide_scored_children(tiny_attention_set):
    settings = symbolic.Settings(mutate_weights={"fit_wide": 1.0}, wide_terms=6)
    op = symbolic.SymbolicOperator(settings, tiny_attention_set.path, True)
    seed = "def attention(tokens):\n    return np.eye(len(tokens))\n"
    parent = base.Parent(id="s", source=seed, iou=np.array([0.9, 0.1, 0.1, 0.1]), length=9)
    [child] = op.vary([base.Request("mutate", (parent,), (0,), seed=3)])
    assert child.source and child.operator == "symbolic.fit_wide", child.error
    assert "softmax_rows(scores)" in child.source and child.meta["fit_iou"] > 0.9
    assert len(scored_text.read(child.source, op._scored_problem())) <= 6


def test_a_heads_first_request_fits_its_table_before_other_edits_are_tried(tiny_attention_set):
    weights = {**symbolic.MUTATE_WEIGHTS, "fit_wide": 1e-6}   # fit_wide would all but never be drawn
    seed = "def attention(tokens):\n    return np.eye(len(tokens))\n"
    parent = base.Parent(id="s", source=seed, iou=np.array([0.9, 0.1, 0.1, 0.1]), length=9)
    op = symbolic.SymbolicOperator(symbolic.Settings(mutate_weights=weights), tiny_attention_set.path, True)
    first, later, uncounted = (base.Request("mutate", (parent,), (0,), 3, visits) for visits in (0, 1, None))
    assert op.vary([first])[0].operator == "symbolic.fit_wide"
    assert all(c.operator != "symbolic.fit_wide" for c in op.vary([later, uncounted]))
    off = symbolic.SymbolicOperator(symbolic.Settings(mutate_weights=weights, table_first=False),
                                    tiny_attention_set.path, True)
    assert off.vary([first])[0].operator != "symbolic.fit_wide"


def test_packed_entries_give_the_rows_a_dense_softmax_gives(annotated):
    sample, prob = annotated
    k = len(prob.keys)
    used = sorted({int(c) for c in prob.row_class if c < len(prob.queries)})
    idx, w = [0, 4, k + used[0] * k + 2, k + used[-1] * k + 5], np.array([1.5, -0.8, 2.0, 0.7])
    per_row = np.zeros((len(prob.valid), k))   # each row's weights, written out the slow way
    for t, x in zip(idx, w):
        if t < k:
            per_row[:, t] += x
        else:
            c, key = divmod(t - k, k)
            per_row[prob.row_class == c, key] += x
    dense = np.stack([sample.pack([score_terms.values(f, list(tok)) for tok in sample.tokens]) for f in prob.keys])
    s = np.where(prob.valid, np.einsum("rk,krn->rn", per_row, dense), -np.inf)
    expected = np.exp(s - s.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(prob.attention(w, idx), expected, atol=1e-5)
    assert len(prob.values) == prob.valid.sum() < prob.valid.size   # masked and padded keys are not stored
    target = sample.targets[1]
    assert prob.iou(prob.attention(w, idx), target) == pytest.approx(
        float(fit.packed_iou(expected, np.where(prob.valid, target, 0.0), prob.row_weight)), abs=1e-5)
