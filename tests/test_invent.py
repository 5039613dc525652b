"""Invented terms: a head's favourite key tokens become one readable score term that the wide fit uses."""

import numpy as np

from evo import prelude, sandbox
from operators.fitting import invent

SENTENCES = [["<s>", " the", " cat", " saw", " the", " dog", "."],
             ["<s>", " a", " cat", " and", " the", " bird", "."],
             ["<s>", " the", " sun", " rose", " over", " the", " hill", "."],
             ["<s>", " birds", " sang", " in", " the", " trees", "."]]


def _head_that_favours(word: str, strength: float = 8.0) -> tuple[list[int], np.ndarray]:
    """Returns lengths and packed causal rows (R, N) of a head whose keys score `strength` on `word`."""
    lengths = [len(t) for t in SENTENCES]
    rows = np.zeros((sum(lengths), max(lengths)))
    r = 0
    for tokens in SENTENCES:
        n = len(tokens)
        scores = np.where(np.array(tokens) == word, strength, 0.0)[None, :].repeat(n, axis=0)
        scores = np.where(np.tril(np.ones((n, n))) > 0, scores, -np.inf)
        a = np.exp(scores - scores.max(axis=1, keepdims=True))
        rows[r:r + n, :n] = a / a.sum(axis=1, keepdims=True)
        r += n
    return lengths, rows


def test_the_favoured_token_gets_the_highest_weight():
    lengths, rows = _head_that_favours(" the")
    term = invent.token_weights(SENTENCES, lengths, rows)
    table = prelude_table(term.expr)
    assert max(table, key=table.get) == " the" and table[" the"] > 1.0
    assert "favours (' the'" in term.meaning


def test_a_head_with_no_token_seen_often_enough_gets_no_term():
    lengths, rows = _head_that_favours(" the")
    assert invent.token_weights([t[:2] for t in SENTENCES], [2] * 4, rows[:8, :2]) is None


def test_the_term_runs_standalone_in_the_sandbox_and_matches_its_computed_values():
    lengths, rows = _head_that_favours(" cat")
    term = invent.token_weights(SENTENCES, lengths, rows)
    source = ("from evo.prelude import key_weight, sink, softmax_rows\n\n\ndef attention(tokens):\n"
              f"    scores = 2.0 * {term.expr}\n    return softmax_rows(scores)\n")
    outcome = sandbox.run(source, [SENTENCES[0]])
    assert outcome.ok, outcome.error
    expected = prelude.softmax_rows(2.0 * term.compute(SENTENCES[0]))
    np.testing.assert_allclose(outcome.matrices[0], expected, atol=1e-9)


def test_key_weight_scores_each_key_by_its_own_token():
    got = prelude.key_weight(["a", "b", "a"], {"a": 1.5})
    np.testing.assert_array_equal(got, [[1.5, 0, 1.5]] * 3)


def prelude_table(expr: str) -> dict:
    """Returns the dict literal inside `key_weight(tokens, {...})`."""
    import ast
    return ast.literal_eval(ast.parse(expr, mode="eval").body.args[1])


def test_a_head_that_looks_at_the_word_after_the_gets_a_key_after_term():
    lengths = [len(t) for t in SENTENCES]
    rows = np.zeros((sum(lengths), max(lengths)))
    r = 0
    for tokens in SENTENCES:
        n = len(tokens)
        after_the = np.array([0.0] + [8.0 if t == " the" else 0.0 for t in tokens[:-1]])
        scores = np.where(np.tril(np.ones((n, n))) > 0, after_the[None, :], -np.inf)
        a = np.exp(scores - scores.max(axis=1, keepdims=True))
        rows[r:r + n, :n] = a / a.sum(axis=1, keepdims=True)
        r += n
    made = invent.terms(SENTENCES, lengths, rows)
    after = next(f for f in made if f.expr.startswith("key_after("))
    table = prelude_table(after.expr)
    assert max(table, key=table.get) == " the" and "\x00" not in table
    np.testing.assert_array_equal(prelude.key_after(["a", " the", "b"], {" the": 2.0})[0], [0, 0, 2.0])


def test_an_encoder_heads_lift_counts_every_query_not_only_later_ones():
    lengths = [len(t) for t in SENTENCES]
    rows = np.zeros((sum(lengths), max(lengths)))
    r = 0
    for tokens in SENTENCES:   # bidirectional: every query sees every key, " the" scores 8
        n = len(tokens)
        a = np.exp(np.where(np.array(tokens) == " the", 8.0, 0.0))[None, :].repeat(n, axis=0)
        rows[r:r + n, :n] = a / a.sum(axis=1, keepdims=True)
        r += n
    table = prelude_table(invent.token_weights(SENTENCES, lengths, rows, causal=False).expr)
    assert max(table, key=table.get) == " the"
