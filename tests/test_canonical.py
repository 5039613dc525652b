"""The canonical form: one definition per name, twins merged, named helpers, shares, complete imports."""

from __future__ import annotations

import re

import numpy as np
import pytest

from canonical_checks import defined_twice, placeholder_names, runs_standalone, unused_helpers
from evo import fitness, prelude, program
from operators.shared import account, canonical, mixing

TOKENS = [["<bos>", "The", " cat", " sat", ".", " The", " cat", " ran", "!"],
          ["<bos>", "A", " b", ",", " c", " 1", " 2", " A", " b", " c", " d", " e", " f"]]

# What the search used to write: _a names, a helper defined twice, a twin helper, tiny terms,
# three-decimal weights, prelude names used without an import.
MESSY = '''
import numpy as np


def _a(tokens):
    n = len(tokens)
    a = np.zeros((n, n))
    a[:, 1] = 1.0
    return a


def _a(tokens):
    n = len(tokens)
    a = np.zeros((n, n))
    a[:, 0] = 1.0
    return a


def _a_2(tokens):
    n = len(tokens)
    a = np.zeros((n, n))
    a[:, 0] = 1.0
    return a


def _a_3(tokens):
    return np.tril(columns(tokens, is_punct))


def _unused(tokens):
    return np.eye(len(tokens))


def _rows(a):
    """Returns `a` causally masked, with each row scaled to sum to 1 (empty rows stay 0)."""
    a = np.tril(np.asarray(a, dtype=float))
    s = a.sum(axis=1, keepdims=True)
    return np.divide(a, s, out=np.zeros_like(a), where=s > 0)


def _self(tokens):
    """Every token attends to itself."""
    n = len(tokens)
    return np.eye(n)


def attention(tokens):
    return 0.642 * _rows(_a(tokens)) + 0.2 * _rows(_a_2(tokens)) + 0.148 * _rows(_a_3(tokens)) \\
        + 0.01 * _rows(_self(tokens))
'''


def _outputs(source: str) -> list[np.ndarray]:
    scope = {k: getattr(prelude, k) for k in prelude.__all__}  # as the sandbox pre-injects them
    exec(compile(source, "<program>", "exec"), scope)  # noqa: S102 - the tests' own programs
    return [fitness.normalise(np.asarray(scope["attention"](t), dtype=float), len(t), True) for t in TOKENS]


def test_canonical_form_defines_each_name_once_with_named_helpers_and_no_dead_code():
    out = canonical.canonical(MESSY, True)
    assert defined_twice(out) == [] and unused_helpers(out) == [] and placeholder_names(out) == []
    mix = mixing.read(out, True)
    names = [t.func for t in mix.terms]
    assert names == ["sink", "punctuation"]  # the twin sinks merged into the prelude's, 1 % self dropped
    assert [t.weight for t in mix.terms] == [0.85, 0.15]
    assert "from evo.prelude import causal_rows, punctuation, sink" in out and "def " not in out.split("def attention")[0]


def test_canonical_weights_have_two_decimals_sum_to_one_and_none_is_under_two_percent():
    out = canonical.canonical(MESSY, True)
    weights = [float(w) for w in re.findall(r"([0-9.]+) \* causal_rows", out)]
    assert sum(weights) == pytest.approx(1.0, abs=1e-9)
    assert all(w >= canonical.MIN_SHARE and round(w, 2) == w for w in weights)


def test_canonical_form_is_a_fixed_point():
    once = canonical.canonical(MESSY, True)
    assert canonical.canonical(once, True) == once
    assert canonical.tidy(once, True) == once


def test_tidy_never_changes_what_a_program_computes():
    tidied = canonical.tidy(MESSY, True)
    assert defined_twice(tidied) == [] and unused_helpers(tidied) == [] and placeholder_names(tidied) == []
    for got, want in zip(_outputs(tidied), _outputs(MESSY)):
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_tidy_keeps_a_plain_program_and_its_comments_when_nothing_needs_changing():
    plain = '"""Self."""\nimport numpy as np\n\n\ndef attention(tokens):\n    # the diagonal\n    return np.eye(len(tokens))\n'
    assert canonical.tidy(plain, True) == plain


def test_tidy_adds_the_imports_a_plain_program_needs(tmp_path):
    plain = "def attention(tokens):\n    return one_hot(len(tokens), word_start(tokens))\n"
    out = canonical.tidy(plain, True)
    assert "from evo.prelude import one_hot, word_start" in out
    (tmp_path / "p.py").write_text(out)
    assert runs_standalone(tmp_path / "p.py") is None


def test_canonical_program_runs_standalone_in_a_fresh_interpreter(tmp_path):
    (tmp_path / "p.py").write_text(canonical.canonical(MESSY, True))
    assert runs_standalone(tmp_path / "p.py") is None


def test_length_is_measured_on_the_canonical_form():
    assert program.length(canonical.canonical(MESSY, True)) < program.length(MESSY)


def test_shares_round_exactly_to_one_and_drop_small_terms():
    terms = [mixing.Term(0.333, "_a"), mixing.Term(0.333, "_b"), mixing.Term(0.334, "_c"), mixing.Term(0.01, "_d")]
    out = canonical.shares(terms)
    assert [t.func for t in out] == ["_c", "_a", "_b"]
    assert sum(round(t.weight * 100) for t in out) == 100


def test_a_whole_program_turned_helper_takes_its_name_and_account_from_its_docstring():
    seed = '"""Previous token: each token attends to the token before it."""\nimport numpy as np\n\n\n' \
           'def attention(tokens):\n    return np.eye(len(tokens), k=-1)\n'
    other = mixing.read('import numpy as np\n\n\ndef attention(tokens):\n    return np.eye(len(tokens))\n', True)
    out = canonical.write(mixing.merge(mixing.read(seed, True), other, 0.7), True)
    assert "def _previous_token(tokens):" in out
    assert account.describe(out, True).startswith("70 % by `_previous_token`: each token attends to the token before it")
