"""The basis library and the edits that fit mixes of it (fit_basis, fit_scratch)."""

import ast
import pathlib

import numpy as np
import pytest

from evo import attention_set, fitness, program, sandbox
from evo.errors import UserError
from operators import base
from operators.shared import basis, canonical, mixing
from operators.fitting import fit
from operators.edits import symbolic

TOKENS = [["<bos>", "The", " Cat", " sat", ".", " A", " dog", ",", " a", " cat", "s", " sat", " 42", "."],
          ["<bos>", "Hi", " there", "!", "<eos>", "Hi"], ["<bos>", "One", ",", " two", ",", " three", " (", "x", ")"],
          ["<bos>"] + [" w", "ord"] * 16]


def _entry(name: str, causal: bool) -> str:
    return f"from evo.prelude import {name}\n\n\ndef attention(tokens):\n    return {name}(tokens)\n"


@pytest.mark.parametrize("causal", [True, False])
def test_in_process_matrices_are_what_the_sandbox_computes(causal):
    for name in basis.names(causal):
        outcome = sandbox.run(_entry(name, causal), TOKENS)
        assert outcome.ok, (name, outcome.error)
        mine = basis.matrices(name, TOKENS, causal)
        for theirs, ours, tokens in zip(outcome.matrices, mine, TOKENS):
            assert ours.shape == (len(tokens), len(tokens))
            assert np.array_equal(np.asarray(theirs, dtype=np.float64), ours), name


def test_every_pattern_meets_the_contract_and_says_what_it_does():
    from evo import prelude
    for name in basis.names(True):
        source = _entry(name, True)
        assert sandbox.check(source) is None, name
        assert program.length(source) < 20, name
        assert (getattr(prelude, name).__doc__ or "").strip(), name


def test_every_older_helper_is_recognised_as_its_prelude_pattern():
    for causal in (True, False):
        for old in basis.legacy_names(causal):
            new = basis.LEGACY[old]
            assert basis.matching(basis.helper_def(old, causal), causal) == new, old
            scope = {}
            exec(compile("import numpy as np\nfrom evo.prelude import *\n" + basis.source(old, causal), old, "exec"), scope)
            for tokens in TOKENS:
                want = fitness.normalise(np.asarray(scope[old](list(tokens)), float), len(tokens), causal)
                got = fitness.normalise(basis.matrices(new, [tokens], causal)[0], len(tokens), causal)
                np.testing.assert_allclose(got, want, atol=1e-12, err_msg=old)


def test_patterns_mean_what_their_names_say():
    tokens = TOKENS[0]
    m = dict(zip(basis.names(True), (np.tril(basis.matrices(b, [tokens], True)[0]) for b in basis.names(True))))
    assert m["two_back"][5, 3] == 1 and m["two_back"][5].sum() == 1
    assert np.isclose(m["decay"][5, 3], 0.25) and m["decay"][3, 5] == 0
    assert m["previous_copy"][11, 3] == 1 and m["previous_copy"][11].sum() == 1  # " sat" seen at 3
    assert m["induction"][12, 4] == 1  # " sat" at 11 follows... the token after the earlier " sat"
    assert m["punctuation"][8, 4] == 1 and m["punctuation"][8, 7] == 1 and m["punctuation"][8].sum() == 2
    assert m["capitals"][6, 1] == 1 and m["capitals"][6, 2] == 1 and m["capitals"][6, 5] == 1
    assert m["word_head"][10, 9] == 1  # "s" belongs to " cat"
    assert m["digits"][13, 12] == 1 and m["digits"][13].sum() == 1
    assert m["early_sink"][2, 0] == 1 and m["early_sink"][3].sum() == 0


def test_matching_recognises_only_the_exact_helper():
    helper = basis.helper_def("_decay", True)
    assert basis.matching(helper, True) == "decay"
    changed = ast.parse(basis.source("_decay", True).replace("0.5", "0.6")).body[0]
    assert basis.matching(changed, True) is None
    with pytest.raises(KeyError):
        basis.source("_nope", True)
    with pytest.raises(KeyError):
        basis.matrices("nope", TOKENS, True)


def _normalised(name: str, causal=True) -> list[np.ndarray]:
    return [fitness.normalise(m, len(t), causal) for m, t in zip(basis.matrices(name, TOKENS, causal), TOKENS)]


def _powered(name: str, q: float) -> list[np.ndarray]:
    return [fitness.normalise(m ** q, len(t), True) for m, t in zip(basis.matrices(name, TOKENS, True), TOKENS)]


@pytest.fixture
def basis_set(tmp_path) -> pathlib.Path:
    """Head 0: 0.5 sink + 0.3 decay ** 2 + 0.2 punctuation; head 1: 0.6 previous + 0.4 same word."""
    sink, punct, prev, word = (_normalised(b) for b in ("sink", "punctuation", "previous_token", "same_word"))
    decay = _powered("decay", 2.0)
    heads = [fit._renorm(np.stack([0.5 * sink[i] + 0.3 * decay[i] + 0.2 * punct[i], 0.6 * prev[i] + 0.4 * word[i]]))
             for i in range(len(TOKENS))]  # rows without punctuation so far share it out, as the evaluator does
    meta = {"model": "synthetic", "causal": True, "n_layers": 1, "n_heads": 2,
            "corpus": {"source": "tests:basis", "fingerprint": "0" * 16}, "max_tokens": 64,
            "dtype": "float32", "tokens": TOKENS, "sentences": ["".join(t) for t in TOKENS]}
    return attention_set.write(tmp_path / "basis-set", meta, heads).path


def _only(edit: str) -> symbolic.Settings:
    return symbolic.Settings(mutate_weights={k: float(k == edit) for k in symbolic.MUTATE_WEIGHTS},
                             crossover_weights={k: 0.0 for k in symbolic.CROSSOVER_WEIGHTS})


def _parent(name: str, k: int = 2) -> base.Parent:
    source = (pathlib.Path(__file__).resolve().parents[1] / "seeds" / f"{name}.py").read_text()
    return base.Parent(name, source, np.zeros(k), program.length(source))


def _iou(source: str, aset_path) -> np.ndarray:
    outcome = sandbox.run(source, TOKENS)
    assert outcome.ok, outcome.error
    outs = [fitness.normalise(m, len(t), True) for m, t in zip(outcome.matrices, TOKENS)]
    return fitness.iou(fitness.Targets.from_set(attention_set.AttentionSet.load(aset_path)), outs)


def test_fit_scratch_fits_a_three_part_mix_closely(basis_set):
    # greedy from one start: a fading sink explains sink + decay best alone, so the fit is close, not exact
    op = symbolic.SymbolicOperator(_only("fit_scratch"), aset_path=basis_set)
    child = op.vary([base.Request("mutate", (_parent("self_token"),), (0,), 0)])[0]
    assert child.operator == "symbolic.fit_scratch", child.error
    terms = {t.func: t for t in mixing.read(child.source, True).terms}
    assert "punctuation" in terms and len(terms) <= symbolic.Settings().max_terms
    assert child.meta["fit_iou"] > 0.965  # canonical: no term under 2 %, two-decimal weights
    assert abs(_iou(child.source, basis_set)[0] - child.meta["fit_iou"]) < 1e-3  # the sandbox agrees


def test_fit_basis_recovers_a_three_part_mix_from_a_sink_parent(basis_set):
    op = symbolic.SymbolicOperator(_only("fit_basis"), aset_path=basis_set)
    child = op.vary([base.Request("mutate", (_parent("first_token"),), (0,), 0)])[0]
    assert child.operator == "symbolic.fit_basis", child.error
    terms = {t.func: t for t in mixing.read(child.source, True).terms}
    assert set(terms) == {"sink", "decay", "punctuation"}  # the parent's sink, named, and two basis terms
    assert terms["decay"].power == 2.0 and round(terms["sink"].weight, 1) == 0.5
    assert child.meta["fit_iou"] > 0.99
    assert _iou(child.source, basis_set)[0] > 0.99  # the sandbox agrees with the in-process fit


def test_fit_scratch_recovers_a_sink_whose_share_falls_with_position(tmp_path):
    fading, prev = _normalised("slow_fading_sink"), _normalised("previous_token")
    heads = [np.stack([0.7 * fading[i] + 0.3 * prev[i]]) for i in range(len(TOKENS))]
    meta = {"model": "synthetic", "causal": True, "n_layers": 1, "n_heads": 1,
            "corpus": {"source": "tests:fading", "fingerprint": "1" * 16}, "max_tokens": 64,
            "dtype": "float32", "tokens": TOKENS, "sentences": ["".join(t) for t in TOKENS]}
    path = attention_set.write(tmp_path / "fading-set", meta, heads).path
    op = symbolic.SymbolicOperator(_only("fit_scratch"), aset_path=path)
    child = op.vary([base.Request("mutate", (_parent("self_token", 1),), (0,), 0)])[0]
    assert child.operator == "symbolic.fit_scratch", child.error
    terms = {t.func: t for t in mixing.read(child.source, True).terms}
    assert set(terms) == {"slow_fading_sink", "previous_token"} and terms["slow_fading_sink"].power == 1.0
    assert _iou(child.source, path)[0] > 0.99


def test_fit_basis_adds_the_missing_part_to_the_parent(basis_set):
    op = symbolic.SymbolicOperator(_only("fit_basis"), aset_path=basis_set)
    child = op.vary([base.Request("mutate", (_parent("previous_token"),), (1,), 3)])[0]
    assert child.operator == "symbolic.fit_basis", child.error
    assert "same_word(tokens)" in child.source and "def _same_word" not in child.source
    assert _iou(child.source, basis_set)[1] > 0.99


def test_screen_finds_the_share_and_exponent(basis_set):
    fitter = fit.Fitter(basis_set)
    sink, decay = fitter.basis_part("sink"), fitter.basis_part("decay")
    alone = fitter.screen(None, decay, True, (0,))
    assert alone[1] == 1.0 and alone[0] < 0.9
    current = fitter.mixed([sink, fitter.basis_part("punctuation")], [0.5, 0.2], [1.0, 1.0])
    score, share, power = fitter.screen(current, decay, fit.graded(decay), (0,))
    assert (round(share, 2), power) == (0.3, 2.0) and score > 0.94  # empty punctuation rows cost a little


def test_min_gain_out_of_range_is_a_user_error():
    with pytest.raises(UserError, match="min_gain"):
        symbolic.Settings(min_gain=1.5)


def test_fading_sinks_give_the_first_token_a_share_that_falls_with_position():
    tokens = TOKENS[3]  # 33 tokens
    rows = {b: fit._renorm(np.tril(basis.matrices(b, [tokens], True)[0])) for b in
            ("fading_sink", "slow_fading_sink", "decay_sink")}
    i = np.arange(len(tokens))
    assert np.allclose(rows["fading_sink"][:, 0], 5 / (5 + i))
    assert np.allclose(rows["slow_fading_sink"][:, 0], 17 / (17 + i))
    assert np.allclose(rows["slow_fading_sink"][20, 1:21], 1 / 37) and rows["slow_fading_sink"][20, 21] == 0
    share = rows["decay_sink"][:, 0]
    assert share[0] == 1 and np.all(np.diff(share) < 0) and 0.25 < share[-1] < 0.35
    assert rows["decay_sink"][20, 20] > rows["decay_sink"][20, 10] > rows["decay_sink"][20, 1] > 0
    squared = fit._renorm(np.tril(basis.matrices("fading_sink", [tokens], True)[0]) ** 2)  # an exponent moves the rate
    assert np.allclose(squared[:, 0], 25 / (25 + i))


def test_fit_prune_drops_the_terms_a_head_does_without(basis_set):
    # head 1 is 0.6 previous + 0.4 same word: a five-part parent keeps those two and loses the rest
    names = ("previous_token", "same_word", "sink", "digits", "self_token")
    parent = mixing.Mix({n: ("evo.prelude", n) for n in names}, [],
                        [mixing.Term(w, n) for w, n in zip((0.5, 0.3, 0.1, 0.05, 0.05), names)])
    source = canonical.write(parent, True)
    op = symbolic.SymbolicOperator(_only("fit_prune"), aset_path=basis_set)
    child = op.vary([base.Request("mutate", (base.Parent("p", source, np.zeros(2), program.length(source)),),
                                  (1,), 0)])[0]
    assert child.operator == "symbolic.fit_prune", child.error
    kept = {t.func for t in mixing.read(child.source, True).terms}
    assert {"previous_token", "same_word"} <= kept and len(kept) < 5
    assert child.meta["fit_iou"] > 0.95
