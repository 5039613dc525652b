"""Accounts in words: shares add to 100 and equal the weights; phrases say what the code does."""

from __future__ import annotations

import re

import numpy as np
import pytest

from operators.shared import account, basis, canonical, mixing


def _mix(parts: list[tuple[float, str, float]]) -> str:
    mix = mixing.Mix({name: ("evo.prelude", name) for _, name, _ in parts}, [],
                     [mixing.Term(w, name, q) for w, name, q in parts])
    return canonical.write(mix, True)


@pytest.mark.parametrize("seed", range(20))
def test_account_shares_add_to_100_and_agree_with_the_weights(seed):
    rng = np.random.default_rng(seed)
    names = [str(n) for n in rng.choice(basis.names(True), size=int(rng.integers(1, 6)), replace=False)]
    source = _mix([(float(rng.uniform(0.05, 1)), n, 1.0) for n in names])
    words = account.describe(source, True)
    shares = [int(s) for s in re.findall(r"(?:^|; )(\d+) % ", words)]
    mix = mixing.read(source, True)
    weights = [t.weight for t in mix.terms] if not mix.wrapped else [1.0]
    if mix.wrapped:  # a single basis term is the whole program: its account is the helper's own docstring
        assert words
        return
    assert sum(shares) == 100
    assert shares == [round(100 * w / sum(weights)) for w in weights]


def test_the_example_from_the_issue_reads_as_intended():
    source = _mix([(0.84, "sink", 1.0), (0.10, "decay", 0.5), (0.06, "uniform", 1.0)])
    words = account.describe(source, True)
    assert words == ("84 % on the first token; 10 % on the last few tokens, fading by 0.71 per step back; "
                     "6 % spread evenly over what it can see")


def test_a_decay_raised_to_a_power_reports_the_rate_it_computes():
    source = _mix([(0.5, "decay", 2.0), (0.5, "sink", 1.0)])
    assert "fading by 0.25 per step back" in account.describe(source, True)


def test_every_basis_phrase_is_defined_for_both_kinds_of_model():
    for causal in (True, False):
        for name in basis.names(causal):
            assert account._PHRASES[name](1.0, causal)


def test_a_plain_program_speaks_through_its_docstring_or_says_it_has_none():
    assert account.describe('"""Self: every token attends to itself."""\ndef attention(tokens):\n    return 1\n',
                            True) == "self: every token attends to itself"
    assert account.describe("def attention(tokens):\n    return 1\n", True) == "a program with no account of its own"


def test_headline_names_the_head_and_its_iou():
    assert account.headline("L5.H1", 0.9234, "84 % on the first token") == "L5.H1 (IoU 0.92): 84 % on the first token"


def test_an_llm_program_keeps_the_account_the_llm_gave_and_tidy_keeps_it_too():
    from operators.shared import canonical
    written = ('"""Mostly the first token; a fifth on the previous token."""\n'
               "from evo.prelude import causal_rows, previous_token, sink\n\n\n"
               "def attention(tokens):\n    return 0.8 * causal_rows(sink(tokens)) + 0.2 * causal_rows(previous_token(tokens))\n")
    tidied = canonical.tidy(written, True)
    assert tidied.startswith('"""Mostly the first token; a fifth on the previous token."""')
    assert account.of_program(tidied, "llm.rewrite", True) == "mostly the first token; a fifth on the previous token"
    assert account.of_program(tidied, "symbolic.fit_mix", True).startswith("80 % on the first token")
