"""The helper prelude: hand-checked cases, and docs/prelude.md agrees with the code."""

import pathlib
import re

import numpy as np
import pytest

from evo import prelude, sandbox

DOC = (pathlib.Path(__file__).parent.parent / "docs" / "prelude.md").read_text()
TOKENS = ["<bos>", "The", " cat", ",", " the", " cat", "s", " sat", ".", "\n"]


@pytest.mark.parametrize("fn, yes, no", [
    (prelude.is_special, ["<bos>", "</s>", "<|endoftext|>", "[CLS]", "<start_of_turn>"],
     [" <", "<b os>", "[cls]", "cat", "<>"]),
    (prelude.is_punct, [",", " ...", "?!", "«"], [" a", "", " ", "<bos>", "a,"]),
    (prelude.is_delimiter, [".", " ,", ";", "\n", " —", ")"], [" a", "", "<bos>", "'s"]),
    (prelude.is_digit, [" 42", "7"], [" 4.2", "", " x1"]),
    (prelude.is_capitalized, [" Paris", "The"], [" paris", " 42", ""]),
    (prelude.is_word_start, [" cat", "\n", ",", "<bos>"], ["cat", "s", ""]),
])
def test_token_predicates(fn, yes, no):
    assert [fn(t) for t in yes] == [True] * len(yes)
    assert [fn(t) for t in no] == [False] * len(no)


def test_strip_removes_surrounding_whitespace_only():
    assert prelude.strip(" world\n") == "world" and prelude.strip("a b") == "a b"


def test_word_positions():
    assert prelude.word_starts(["cat", "s"]) == [True, False]
    assert prelude.word_index(TOKENS) == [0, 1, 2, 3, 4, 5, 5, 6, 7, 8]
    assert prelude.word_start(TOKENS) == [0, 1, 2, 3, 4, 5, 5, 7, 8, 9]
    assert prelude.word_index([]) == [] and prelude.word_start([]) == []


def test_word_ends_close_each_word_on_its_last_piece():
    assert prelude.word_ends(["<bos>", " cat", "s", " sat", "."]) == [True, False, True, True, True]
    assert prelude.word_ends([]) == []
    ends = prelude.word_endings(["<bos>", " cat", "s"])
    np.testing.assert_array_equal(ends, [[1, 0, 1]] * 3)


def test_occurrences():
    assert prelude.first_occurrence(TOKENS)[" cat"] == 2
    assert prelude.previous_occurrence(TOKENS, 5) == 2
    assert prelude.previous_occurrence(TOKENS, 4) is None
    assert prelude.most_recent(TOKENS, prelude.is_punct) == [None, None, None, 3, 3, 3, 3, 3, 8, 8]
    assert prelude.most_recent(TOKENS, prelude.is_punct, include_self=False)[3:5] == [None, 3]


def test_matrices():
    same = prelude.same_token(["a", "b", "a"])
    np.testing.assert_array_equal(same, [[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    np.testing.assert_array_equal(prelude.columns(["a", ",", "b"], prelude.is_punct),
                                  [[0, 1, 0]] * 3)
    np.testing.assert_array_equal(prelude.one_hot(3, [0, None, 7]), [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(prelude.causal_uniform(3).sum(axis=1), 1.0)
    assert prelude.causal_uniform(3)[1, 2] == 0 and prelude.causal_uniform(3)[2, 0] == pytest.approx(1 / 3)
    np.testing.assert_array_equal(prelude.band(4, 1, 1)[1], [1, 1, 1, 0])
    for m in (prelude.same_token([]), prelude.causal_uniform(0), prelude.band(0, 1), prelude.one_hot(0, [])):
        assert m.shape == (0, 0)


def test_every_helper_is_documented_and_every_documented_helper_exists():
    documented = set(re.findall(r"^\| `(\w+)\(", DOC, flags=re.M))
    assert documented == set(prelude.__all__)


def test_documented_examples_run_in_the_sandbox_and_do_what_they_say():
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    examples = [b for b in blocks if b.startswith("def attention(tokens):\n")]
    assert len(examples) >= 6
    tokens = ["<bos>", "The", " cat", ",", " the", " cat", " sat"]
    got = {}
    for source in examples:
        assert sandbox.check(source) is None, source
        outcome = sandbox.run(source, [tokens])
        assert outcome.ok, outcome.error
        got[source.splitlines()[1].strip('" ').split(":")[0].rstrip(".")] = outcome.matrices[0]
    assert got["Induction"][5].argmax() == 3 and got["Induction"][2].sum() == 0
    assert got["Duplicate token"][5].tolist() == [0, 0, 1, 0, 0, 0, 0]
    assert got["Most recent delimiter (strictly before the current token)"][4].argmax() == 3
    assert (got["First-token sink"][:, 0] == 1).all()
