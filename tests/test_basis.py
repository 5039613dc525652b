"""The basis library and the edits that fit mixes of it (fit_basis, fit_scratch)."""

import ast
import pathlib

import numpy as np
import pytest

from evo import attention_set, fitness, program, sandbox
from evo.errors import UserError
from operators import base, basis, canonical, fit, mixing, symbolic

TOKENS = [["<bos>", "The", " Cat", " sat", ".", " A", " dog", ",", " a", " cat", "s", " sat", " 42", "."],
          ["<bos>", "Hi", " there", "!", "<eos>", "Hi"], ["<bos>", "One", ",", " two", ",", " three", " (", "x", ")"],
          ["<bos>"] + [" w", "ord"] * 16]


def _entry(name: str, causal: bool) -> str:
    return basis.source(name, causal) + f"\n\ndef attention(tokens):\n    return {name}(tokens)\n"


@pytest.mark.parametrize("causal", [True, False])
def test_in_process_matrices_are_what_the_sandbox_computes(causal):
    for name in basis.names(causal):
        outcome = sandbox.run(_entry(name, causal), TOKENS)
        assert outcome.ok, (name, outcome.error)
        mine = basis.matrices(name, TOKENS, causal)
        for theirs, ours, tokens in zip(outcome.matrices, mine, TOKENS):
            assert ours.shape == (len(tokens), len(tokens))
            assert np.array_equal(np.asarray(theirs, dtype=np.float64), ours), name


def test_every_helper_meets_the_contract_and_is_short():
    for name in basis.names(True):
        source = _entry(name, True)
        assert sandbox.check(source) is None, name
        assert program.length(source) < 120, name
        assert ast.get_docstring(basis.helper_def(name, True)), name


def test_patterns_mean_what_their_names_say():
    tokens = TOKENS[0]
    m = dict(zip(basis.names(True), (basis.matrices(b, [tokens], True)[0] for b in basis.names(True))))
    assert m["_two_back"][5, 3] == 1 and m["_two_back"][5].sum() == 1
    assert np.isclose(m["_decay"][5, 3], 0.25) and m["_decay"][3, 5] == 0
    assert m["_previous_copy"][11, 3] == 1 and m["_previous_copy"][11].sum() == 1  # " sat" seen at 3
    assert m["_induction"][12, 4] == 1  # " sat" at 11 follows... the token after the earlier " sat"
    assert m["_punct"][8, 4] == 1 and m["_punct"][8, 7] == 1 and m["_punct"][8].sum() == 2
    assert m["_capitals"][6, 1] == 1 and m["_capitals"][6, 2] == 1 and m["_capitals"][6, 5] == 1
    assert m["_word_head"][10, 9] == 1  # "s" belongs to " cat"
    assert m["_digits"][13, 12] == 1 and m["_digits"][13].sum() == 1
    assert m["_early_sink"][2, 0] == 1 and m["_early_sink"][3].sum() == 0


def test_known_recognises_only_the_exact_helper():
    helper = basis.helper_def("_decay", True)
    assert basis.known(helper, True) == "_decay"
    changed = ast.parse(basis.source("_decay", True).replace("0.5", "0.6")).body[0]
    assert basis.known(changed, True) is None
    assert basis.known(basis.helper_def("_sink", True), True) == "_sink"
    assert mixing.known_pattern(basis.helper_def("_sink", True), True) == "_sink"  # twins of mixing's
    with pytest.raises(KeyError):
        basis.source("_nope", True)


def _normalised(name: str, causal=True) -> list[np.ndarray]:
    return [fitness.normalise(m, len(t), causal) for m, t in zip(basis.matrices(name, TOKENS, causal), TOKENS)]


def _powered(name: str, q: float) -> list[np.ndarray]:
    return [fitness.normalise(m ** q, len(t), True) for m, t in zip(basis.matrices(name, TOKENS, True), TOKENS)]


@pytest.fixture
def basis_set(tmp_path) -> pathlib.Path:
    """Head 0: 0.5 sink + 0.3 decay ** 2 + 0.2 punctuation; head 1: 0.6 previous + 0.4 same word."""
    sink, punct, prev, word = (_normalised(b) for b in ("_sink", "_punct", "_previous", "_same_word"))
    decay = _powered("_decay", 2.0)
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
    assert "_punct" in terms and len(terms) <= symbolic.Settings().max_terms
    assert child.meta["fit_iou"] > 0.965  # canonical: no term under 2 %, two-decimal weights
    assert abs(_iou(child.source, basis_set)[0] - child.meta["fit_iou"]) < 1e-3  # the sandbox agrees


def test_fit_basis_recovers_a_three_part_mix_from_a_sink_parent(basis_set):
    op = symbolic.SymbolicOperator(_only("fit_basis"), aset_path=basis_set)
    child = op.vary([base.Request("mutate", (_parent("first_token"),), (0,), 0)])[0]
    assert child.operator == "symbolic.fit_basis", child.error
    terms = {t.func: t for t in mixing.read(child.source, True).terms}
    assert set(terms) == {"_first_token_sink", "_decay", "_punct"}  # the parent's sink, named, and two basis terms
    assert terms["_decay"].power == 2.0 and round(terms["_first_token_sink"].weight, 1) == 0.5
    assert child.meta["fit_iou"] > 0.99
    assert _iou(child.source, basis_set)[0] > 0.99  # the sandbox agrees with the in-process fit


def test_fit_scratch_recovers_a_sink_whose_share_falls_with_position(tmp_path):
    fading, prev = _normalised("_slow_fading_sink"), _normalised("_previous")
    heads = [np.stack([0.7 * fading[i] + 0.3 * prev[i]]) for i in range(len(TOKENS))]
    meta = {"model": "synthetic", "causal": True, "n_layers": 1, "n_heads": 1,
            "corpus": {"source": "tests:fading", "fingerprint": "1" * 16}, "max_tokens": 64,
            "dtype": "float32", "tokens": TOKENS, "sentences": ["".join(t) for t in TOKENS]}
    path = attention_set.write(tmp_path / "fading-set", meta, heads).path
    op = symbolic.SymbolicOperator(_only("fit_scratch"), aset_path=path)
    child = op.vary([base.Request("mutate", (_parent("self_token", 1),), (0,), 0)])[0]
    assert child.operator == "symbolic.fit_scratch", child.error
    terms = {t.func: t for t in mixing.read(child.source, True).terms}
    assert set(terms) == {"_slow_fading_sink", "_previous"} and terms["_slow_fading_sink"].power == 1.0
    assert _iou(child.source, path)[0] > 0.99


def test_fit_basis_adds_the_missing_part_to_the_parent(basis_set):
    op = symbolic.SymbolicOperator(_only("fit_basis"), aset_path=basis_set)
    child = op.vary([base.Request("mutate", (_parent("previous_token"),), (1,), 3)])[0]
    assert child.operator == "symbolic.fit_basis", child.error
    assert "def _same_word(tokens):" in child.source
    assert _iou(child.source, basis_set)[1] > 0.99


def test_screen_finds_the_share_and_exponent(basis_set):
    fitter = fit.Fitter(basis_set)
    sink, decay = fitter.basis_part("_sink"), fitter.basis_part("_decay")
    alone = fitter.screen(None, decay, True, (0,))
    assert alone[1] == 1.0 and alone[0] < 0.9
    current = fitter.mixed([sink, fitter.basis_part("_punct")], [0.5, 0.2], [1.0, 1.0])
    score, share, power = fitter.screen(current, decay, fit.graded(decay), (0,))
    assert (round(share, 2), power) == (0.3, 2.0) and score > 0.94  # empty punctuation rows cost a little


def test_min_gain_out_of_range_is_a_user_error():
    with pytest.raises(UserError, match="min_gain"):
        symbolic.Settings(min_gain=1.5)


def test_fading_sinks_give_the_first_token_a_share_that_falls_with_position():
    tokens = TOKENS[3]  # 33 tokens
    rows = {b: fit._renorm(basis.matrices(b, [tokens], True)[0]) for b in
            ("_fading_sink", "_slow_fading_sink", "_decay_sink")}
    i = np.arange(len(tokens))
    assert np.allclose(rows["_fading_sink"][:, 0], 5 / (5 + i))
    assert np.allclose(rows["_slow_fading_sink"][:, 0], 17 / (17 + i))
    assert np.allclose(rows["_slow_fading_sink"][20, 1:21], 1 / 37) and rows["_slow_fading_sink"][20, 21] == 0
    share = rows["_decay_sink"][:, 0]
    assert share[0] == 1 and np.all(np.diff(share) < 0) and 0.25 < share[-1] < 0.35
    assert rows["_decay_sink"][20, 20] > rows["_decay_sink"][20, 10] > rows["_decay_sink"][20, 1] > 0
    squared = fit._renorm(basis.matrices("_fading_sink", [tokens], True)[0] ** 2)  # an exponent moves the rate
    assert np.allclose(squared[:, 0], 25 / (25 + i))


def test_fit_prune_drops_the_terms_a_head_does_without(basis_set):
    # head 1 is 0.6 previous + 0.4 same word: a five-part parent keeps those two and loses the rest
    parent = mixing.Mix({}, [basis.helper_def(n, True) for n in ("_previous", "_same_word", "_sink", "_digits", "_self")],
                        [mixing.Term(w, n) for w, n in ((0.5, "_previous"), (0.3, "_same_word"), (0.1, "_sink"),
                                                        (0.05, "_digits"), (0.05, "_self"))])
    source = canonical.write(parent, True)
    op = symbolic.SymbolicOperator(_only("fit_prune"), aset_path=basis_set)
    child = op.vary([base.Request("mutate", (base.Parent("p", source, np.zeros(2), program.length(source)),),
                                  (1,), 0)])[0]
    assert child.operator == "symbolic.fit_prune", child.error
    kept = {t.func for t in mixing.read(child.source, True).terms}
    assert {"_previous", "_same_word"} <= kept and len(kept) < 5
    assert child.meta["fit_iou"] > 0.95
