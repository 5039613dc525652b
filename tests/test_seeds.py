"""Tests for the seed programs: the contract, their docstrings, and what each one describes."""

import importlib.util
import pathlib

import numpy as np
import pytest

from evo import fitness, program

SEEDS = sorted((pathlib.Path(__file__).parent.parent / "seeds").glob("*.py"))
TOKENS = ["<bos>", "The", " cat", " sat", ".", " The", " cat", " ran", " away", ",", " Bob", " said"]


def _load(path):
    """Returns the `attention` function of a seed file (seeds are trusted project code)."""
    spec = importlib.util.spec_from_file_location(f"seed_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.attention


def _seed(name):
    return _load(next(p for p in SEEDS if p.stem == name))


def _argmax_rows(name, tokens=TOKENS):
    return list(np.argmax(fitness.normalise(_seed(name)(tokens), len(tokens), True), axis=1))


def test_there_are_at_least_fourteen_seeds():
    assert len(SEEDS) >= 14


@pytest.mark.parametrize("path", SEEDS, ids=[p.stem for p in SEEDS])
def test_seed_has_one_line_docstring_and_is_short(path):
    source = path.read_text()
    assert program.docstring(source), f"{path.name} lacks a module docstring"
    assert program.length(source) < 120


@pytest.mark.parametrize("path", SEEDS, ids=[p.stem for p in SEEDS])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("tokens", [TOKENS, ["<bos>"], ["[CLS]", "hello", "[SEP]"]])
def test_seed_meets_the_contract(path, causal, tokens):
    raw = _load(path)(list(tokens))
    out = fitness.normalise(raw, len(tokens), causal)   # raises on malformed output
    sums = out.sum(axis=1)
    assert np.all((np.abs(sums - 1) < 1e-9) | (sums == 0))


def test_seeds_pass_the_sandbox_static_check():
    sandbox = pytest.importorskip("evo.sandbox")
    for path in SEEDS:
        assert sandbox.check(path.read_text()) is None, path.name


def test_previous_token_and_first_token():
    assert _argmax_rows("previous_token") == [0] + list(range(len(TOKENS) - 1))
    assert _argmax_rows("first_token") == [0] * len(TOKENS)


def test_induction_finds_the_token_after_the_earlier_copy():
    # " ran" (7) follows " cat" (6), whose earlier copy (2) was followed by " sat" (3)
    assert _argmax_rows("induction")[7] == 3
    assert _argmax_rows("induction")[3] == 0   # " sat" follows the first " cat": no earlier copy


def test_duplicate_token_points_at_the_earlier_copy():
    rows = _argmax_rows("duplicate_token")
    assert rows[6] == 2 and rows[2] == 0


def test_recent_delimiter_and_word_structure():
    assert _argmax_rows("recent_delimiter")[7] == 4
    assert _argmax_rows("recent_delimiter")[11] == 9
    assert _argmax_rows("word_start", ["<bos>", " un", "believ", "able", " day"]) == [0, 1, 1, 1, 4]
    assert _argmax_rows("previous_word_start", ["<bos>", " un", "believ", " day"]) == [0, 0, 0, 1]


def test_capitalised_attends_to_names():
    a = fitness.normalise(_seed("capitalised")(TOKENS), len(TOKENS), True)
    assert a[11, 10] > 0 and a[11, 1] > 0 and a[11, 2] == 0
