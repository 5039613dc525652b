"""The offline symbolic operators: edits, mixes, crossovers and weight fitting."""

import ast
import pathlib

import numpy as np
import pytest

from evo import attention_set, fitness, program, sandbox
from evo.errors import UserError
from operators.shared import ast_edits, mixing, rendering
from operators import base, registry
from operators.edits import mutations, symbolic

SEEDS = sorted(pathlib.Path(__file__).resolve().parents[1].glob("seeds/*.py"))
TOKENS = [["<bos>", "The", " cat", " sat", ".", " A", " dog", ",", " a", " cat", "."],
          ["<bos>", "Hi", " there", "!"], ["<bos>", "One", ",", " two", ",", " three"]]

LOOP = '''"""Previous token, written as a loop."""
import numpy as np


def attention(tokens):
    n = len(tokens)
    out = np.zeros((n, n))
    for i in range(n):
        if i > 0 and tokens[i] != ".":
            out[i, i - 1] = 1.0
        out[i, 0] += 0.5
    return out
'''
PREDICATE = '''from evo.prelude import columns, is_punct
import numpy as np


def attention(tokens):
    a = np.tril(columns(tokens, is_punct))
    a[:, 0] += 1
    return a
'''


def _parent(source: str, name: str = "p", k: int = 2) -> base.Parent:
    return base.Parent(name, source, np.zeros(k), program.length(source))


def _only(edit: str, kind: str = "mutate", **extra) -> symbolic.Settings:
    table = "mutate_weights" if kind == "mutate" else "crossover_weights"
    known = symbolic.MUTATE_WEIGHTS if kind == "mutate" else symbolic.CROSSOVER_WEIGHTS
    return symbolic.Settings(**{table: {k: float(k == edit) for k in known}}, **extra)


def _outputs(source: str, tokens=TOKENS) -> list[np.ndarray]:
    outcome = sandbox.run(source, tokens)
    assert outcome.ok, outcome.error
    return [fitness.normalise(m, len(t), True) for m, t in zip(outcome.matrices, tokens)]


def _assert_contract(source: str) -> None:
    tree = ast.parse(source)
    public = [s.name for s in tree.body if isinstance(s, ast.FunctionDef) and not s.name.startswith("_")]
    assert public == ["attention"]
    assert sandbox.check(source) is None


def _write_set(path, heads_of) -> pathlib.Path:
    meta = {"model": "synthetic", "causal": True, "n_layers": 1, "n_heads": 2,
            "corpus": {"source": "tests:symbolic", "fingerprint": "0" * 16}, "max_tokens": 64,
            "dtype": "float32", "tokens": TOKENS, "sentences": ["".join(t) for t in TOKENS]}
    return attention_set.write(path, meta, [heads_of(len(t)) for t in TOKENS]).path


def _pattern(name: str, n: int) -> np.ndarray:
    from operators.shared import basis
    return fitness.normalise(basis.matrices(basis.LEGACY[name], [["t"] * n], True)[0], n, True)


@pytest.fixture
def mix_set(tmp_path) -> pathlib.Path:
    """Returns a set whose head 0 is 0.3 previous + 0.7 first token, head 1 0.6 self + 0.4 uniform."""
    def heads(n):
        return np.stack([0.3 * _pattern("_previous", n) + 0.7 * _pattern("_sink", n),
                         0.6 * _pattern("_self", n) + 0.4 * _pattern("_uniform", n)])
    return _write_set(tmp_path / "mix-set", heads)


def test_change_constant_keeps_ints_int_and_changes_one_value():
    for seed in range(20):
        tree = ast.parse(LOOP)
        note = mutations.change_constant(tree, np.random.default_rng(seed))
        before = [n.value for n in ast.walk(ast.parse(LOOP)) if isinstance(n, ast.Constant) and type(n.value) in (int, float)]
        after = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and type(n.value) in (int, float)]
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(changed) == 1, note
        assert type(changed[0][0]) is type(changed[0][1])


def test_shift_offset_moves_an_offset_by_one():
    sources = set()
    for seed in range(30):
        tree = ast.parse(LOOP)
        mutations.shift_offset(tree, np.random.default_rng(seed))
        sources.add(ast.unparse(tree))
    assert any("out[i, i - 2] = 1.0" in s for s in sources)
    assert any("out[i, i] = 1.0" in s for s in sources)  # i - 0 written as i


def test_swap_predicate_uses_a_prelude_predicate_and_imports_it():
    tree = ast.parse(PREDICATE)
    note = mutations.swap_predicate(tree, np.random.default_rng(0))
    new = note.split(" -> ")[1]
    assert new in mutations.predicates() and new != "is_punct"
    source = ast_edits.unparse(tree)
    assert f"columns(tokens, {new})" in source
    imported = [a.name for s in tree.body if isinstance(s, ast.ImportFrom) for a in s.names]
    assert new in imported
    _outputs(source)


def test_flip_comparison_changes_one_operator():
    tree = ast.parse(LOOP)
    note = mutations.flip_comparison(tree, np.random.default_rng(3))
    assert ast.unparse(tree) != ast.unparse(ast.parse(LOOP)), note


def test_edit_without_a_site_is_not_applicable():
    with pytest.raises(ast_edits.NotApplicable, match="no token predicate"):
        mutations.swap_predicate(ast.parse(LOOP), np.random.default_rng(0))


@pytest.mark.parametrize("edit", sorted(set(symbolic.MUTATE_WEIGHTS) - set(symbolic.FIT_EDITS)))
def test_every_mutation_on_every_seed_meets_the_contract(edit):
    op = symbolic.SymbolicOperator(_only(edit))
    sources = [p.read_text() for p in SEEDS]
    sources += [rendering.render(mixing.merge(mixing.read(a, True), mixing.read(b, True), 0.4), True)
                for a, b in zip(sources[:5], sources[5:10])]
    requests = [base.Request("mutate", (_parent(s, str(i)),), (0,), i) for i, s in enumerate(sources)]
    children = op.vary(requests)
    made = [c for c in children if c.source is not None]
    assert made, [c.error for c in children]
    for child in made:
        assert child.operator.startswith("symbolic.")
        _assert_contract(child.source)
        assert max(len(line) for line in child.source.splitlines()) < 120


def test_mix_crossover_is_the_weighted_mix_of_normalised_parents():
    a, b = (SEEDS[0].read_text(), LOOP)
    op = symbolic.SymbolicOperator(_only("mix", "crossover"))
    child = op.vary([base.Request("crossover", (_parent(a, "a"), _parent(b, "b")), (0,), 5)])[0]
    _assert_contract(child.source)
    w = float(child.meta["edit"].split(" * ")[0])
    expected = [w * x + (1 - w) * y for x, y in zip(_outputs(a), _outputs(b))]
    for got, want in zip(_outputs(child.source), expected):
        np.testing.assert_allclose(got, want, atol=1e-9)


def test_mixing_mixes_stays_flat_and_shares_identical_helpers():
    a, b = mixing.read(LOOP, True), mixing.read(PREDICATE, True)
    twice = mixing.read(rendering.render(mixing.merge(a, b, 0.5), True), True)
    again = mixing.merge(twice, mixing.read(LOOP, True), 0.5)
    source = rendering.render(again, True)
    assert source.count("\ndef _") == 2  # two helpers (rows come from the prelude): LOOP once, under one name
    assert sorted(t.weight for t in mixing.read(source, True).terms) == [0.25, 0.75]
    _assert_contract(source)


def test_merge_renames_a_clashing_helper():
    helper = "def _h(t):\n    return {}\n\n\n"
    one = mixing.read(helper.format(1.0) + "def attention(tokens):\n    return _h(len(tokens))\n", True)
    two = mixing.read(helper.format(2.0) + "def attention(tokens):\n    return _h(len(tokens))\n", True)
    source = rendering.render(mixing.merge(one, two, 0.5), True)
    assert "def _h(t):" in source and "def _h_2(t):" in source and "_h_2(len(tokens))" in source


def test_children_are_deterministic_and_independent_of_batch_order(mix_set):
    parents = [_parent(p.read_text(), p.stem) for p in SEEDS[:6]]
    requests = [base.Request("mutate", (p,), (0,), 100 + i) for i, p in enumerate(parents)]
    requests += [base.Request("crossover", (parents[i], parents[i + 1]), (1,), 200 + i) for i in range(4)]
    first = symbolic.SymbolicOperator(aset_path=mix_set).vary(requests)
    second = symbolic.SymbolicOperator(aset_path=mix_set).vary(requests[::-1])[::-1]
    assert [(c.source, c.operator) for c in first] == [(c.source, c.operator) for c in second]


def test_fit_recovers_known_weights(mix_set):
    previous = (pathlib.Path(__file__).resolve().parents[1] / "seeds/previous_token.py").read_text()
    op = symbolic.SymbolicOperator(_only("fit_weight"), aset_path=mix_set)
    child = op.vary([base.Request("mutate", (_parent(previous),), (0,), 1)])[0]
    assert child.operator == "symbolic.fit_weight", child.error
    terms = mixing.read(child.source, True).terms
    weights = sorted(round(t.weight, 2) for t in terms)
    assert weights == [0.3, 0.7]
    assert child.meta["fit_iou"] > 0.99
    aset = attention_set.AttentionSet.load(mix_set)
    assert fitness.iou(fitness.Targets.from_set(aset), _outputs(child.source))[0] > 0.99


def test_fit_mix_recovers_the_weight_between_two_parents(mix_set):
    seeds = pathlib.Path(__file__).resolve().parents[1] / "seeds"
    a, b = (seeds / "self_token.py").read_text(), (seeds / "uniform_causal.py").read_text()
    op = symbolic.SymbolicOperator(_only("fit_mix", "crossover"), aset_path=mix_set)
    child = op.vary([base.Request("crossover", (_parent(a, "a"), _parent(b, "b")), (1,), 4)])[0]
    assert child.operator == "symbolic.fit_mix", child.error
    assert sorted(round(t.weight, 2) for t in mixing.read(child.source, True).terms) == [0.4, 0.6]


def test_fit_of_a_failing_parent_is_a_child_with_an_error(mix_set):
    broken = "def attention(tokens):\n    return [[1.0]]\n"
    op = symbolic.SymbolicOperator(_only("fit_weight"), aset_path=mix_set)
    child = op.vary([base.Request("mutate", (_parent(broken),), (0,), 1)])[0]
    assert child.source is None and "fit_weight" in child.error and "shape" in child.error


def test_a_child_over_the_length_cap_is_refused():
    op = symbolic.SymbolicOperator(_only("mix", "crossover", max_length=40))
    child = op.vary([base.Request("crossover", (_parent(LOOP, "a"), _parent(PREDICATE, "b")), (0,), 0)])[0]
    assert child.source is None and "over the cap of 40" in child.error


def test_requests_with_the_wrong_parent_count_are_rejected():
    with pytest.raises(ValueError, match="takes 2 parent"):
        base.Request("crossover", (_parent(LOOP),), (0,), 0)
    with pytest.raises(ValueError, match="kind"):
        base.Request("rewrite", (_parent(LOOP),), (0,), 0)


def test_bad_settings_are_user_errors(mix_set):
    with pytest.raises(UserError, match="unknown symbolic edit"):
        symbolic.Settings(mutate_weights={"teleport": 1.0})
    with pytest.raises(UserError, match="unknown symbolic setting"):
        registry.build({"operators": "offline", "symbolic": {"max_lenght": 3}}, mix_set)
    with pytest.raises(UserError, match="unknown operators"):
        registry.build({"operators": "genetic"}, mix_set)


def test_registry_builds_the_offline_operator_with_fitting(mix_set):
    op = registry.build({"operators": "offline", "symbolic": {"max_length": 300}}, mix_set)
    assert op.name == "symbolic" and op.settings.max_length == 300 and op.fitter is not None


def test_score_terms_flag_reaches_the_operator_and_rejects_nonsense(mix_set):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--operators", default="offline")
    registry.add_arguments(parser)
    settings = registry.settings_from_args(parser.parse_args(["--score-terms", "4", "--max-length", "300",
                                                              "--wide-terms", "20"]))
    assert settings["symbolic"] == {"max_length": 300, "scored_terms": 4, "wide_terms": 20}
    assert registry.build(settings, mix_set).settings.scored_terms == 4
    assert registry.build(settings, mix_set).settings.wide_terms == 20
    with pytest.raises(UserError, match="--wide-terms must be positive"):
        registry.settings_from_args(parser.parse_args(["--wide-terms", "-1"]))
    with pytest.raises(UserError, match="--score-terms must be positive"):
        registry.settings_from_args(parser.parse_args(["--score-terms", "0"]))
