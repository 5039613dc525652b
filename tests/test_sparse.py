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


def _nodes(found) -> int:
    return program.length(canonical.tidy(scored_text.source(found), True))


def test_a_cut_table_fits_its_node_budget_and_scores_in_the_sandbox_as_its_fit_says(problem, tiny_attention_set):
    sample, prob = problem
    for head in range(len(sample.targets)):
        table = scored.fit_wide(prob, sample.targets[head], max_terms=40)
        terms = [(prob.index(f.expr), w) for f, w in table.terms]
        if _nodes(table) <= 45:
            continue   # already within the budget: nothing to cut
        found = sparse.cut(prob, sample.targets[head], terms, max_nodes=45)
        assert found.terms and _nodes(found) <= 45
        assert {f.expr for f, _ in found.terms} <= {f.expr for f, _ in table.terms}
        assert found.iou >= sparse.fit(prob, sample.targets[head], max_terms=1, max_nodes=45).iou - 0.02
        [ev] = evaluate.evaluate([canonical.tidy(scored_text.source(found), True)], tiny_attention_set.path, workers=1)
        assert ev.ok and float(ev.iou[head]) == pytest.approx(found.iou, abs=0.02)


def test_a_cut_never_ends_on_a_term_over_its_budget_and_fills_what_a_long_term_freed(problem):
    sample, prob = problem
    from evo import prelude
    from operators.shared.score_terms import Feature

    def written_long(name: str, words: str, lines: int) -> Feature:
        body = "".join(f"    x{i} = len(tokens) + {i}\n" for i in range(lines))
        source = f'def {name}(tokens):\n    """{words}."""\n{body}    return np.eye(len(tokens), k=-1)\n'
        return Feature(f"{name}(tokens)", words, False, prelude.previous_token, definition=source)

    huge = written_long("_huge", "the previous token, written very long", 40)
    big = written_long("_big", "the previous token, written long", 8)
    bigger = prob.extended(sample, [huge, big])
    target = sample.targets[0]                                     # the previous-token head
    table = scored.fit_wide(bigger, target, max_terms=12, allowed=bigger.unconditioned([len(prob.keys)]))
    terms = [(bigger.index(huge.expr), 6.0), (bigger.index(big.expr), 5.0)] + [
        (bigger.index(f.expr), w) for f, w in table.terms if f.expr not in (huge.expr, big.expr)]
    budget = _nodes(scored.Fit(((big, 5.0),), 0.0)) + 30
    assert _nodes(scored.Fit(((huge, 6.0),), 0.0)) > budget          # the huge term alone overruns it
    found = sparse.cut(bigger, target, terms, max_nodes=budget)
    assert found.terms and _nodes(found) <= budget
    assert huge.expr not in {f.expr for f, _ in found.terms}
    assert found.iou >= sparse.fit(bigger, target, max_terms=1, max_nodes=budget).iou - 0.01


def test_the_offline_operator_cuts_a_heads_table_to_a_node_budget(tiny_attention_set):
    from operators import base
    from operators.edits import symbolic
    settings = symbolic.Settings(mutate_weights={"fit_within": 1.0}, within_nodes=50)
    op = symbolic.SymbolicOperator(settings, tiny_attention_set.path, True)
    seed = "def attention(tokens):\n    return np.eye(len(tokens))\n"
    parent = base.Parent(id="s", source=seed, iou=np.array([0.1, 0.1, 0.1, 0.9]), length=9)
    for k in range(3):
        [child] = op.vary([base.Request("mutate", (parent,), (k,), seed=k)])
        assert child.source and child.operator == "symbolic.fit_within", child.error
        assert program.length(child.source) <= 50 and "AST nodes" in child.meta["edit"]
