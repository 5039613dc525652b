"""A head's affinity with each token read beside the tokens before it (evo.affinity.context): what it is, where
it is kept, how programs call it, and how a search grows it a step at a time. Tiny random models; no real model."""

import warnings

import numpy as np
import pytest

from evo import affinity, attention_set, capture, models, sandbox
from evo.affinity import context
from evo.prelude import content
from operators import base
from operators.edits import symbolic


@pytest.fixture(autouse=True)
def _forget():
    """Each test starts with no set handed to this process and no model loaded for reading tokens."""
    for held in (affinity._SETS, affinity._HANDLES, affinity._LIVE, affinity._CHECKED, content._KNOWN):
        held.clear()
    yield
    for held in (affinity._SETS, affinity._HANDLES, affinity._LIVE):
        held.clear()


def _softmax(scores: np.ndarray, visible: np.ndarray) -> np.ndarray:
    e = np.where(visible, np.exp(scores - scores.max()), 0.0)
    return e / e.sum(axis=1, keepdims=True)


def test_each_token_is_read_beside_the_tokens_before_it_and_its_sentences_own_start_where_nearer():
    ids = [2, 10, 11, 12, 13]   # 2: the model's start token
    assert context.readings(ids, 2, [2]) == [(2,), (2, 10), (2, 10, 11), (2, 10, 11, 12), (2, 11, 12, 13)]
    assert context.readings([10, 11, 12], 1, []) == [(10,), (10, 11), (11, 12)]   # no start token (GPT-2)
    read = context.readings(ids, 1, [2])
    # token 4 is read at position 2 (start, 12, 13), token 1 at position 1 (start, 10): one apart as read, so
    # the query is turned two more to stand its sentence distance, 3, apart
    assert context.gaps(read)[4, 1] == 2 and context.gaps(read)[4, 4] == 0


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_with_context_back_to_the_start_a_later_layers_attention_is_the_softmax_of_it(family, tiny_model_dirs,
                                                                                    tiny_corpus, tmp_path):
    loaded = models.load(str(tiny_model_dirs[family]))
    aset = capture.capture(loaded, tiny_corpus, tmp_path / "set")
    config = loaded.model.config
    last = aset.n_layers - 1
    kind = (getattr(config, "layer_types", None) or [""] * aset.n_layers)[last]
    window = config.sliding_window if "sliding" in kind else None
    gaps = []
    for s, tokens in enumerate(aset.tokens[:4]):
        n, heads = len(tokens), aset.matrices(s)
        gap = np.subtract.outer(np.arange(n), np.arange(n))
        visible = (gap >= 0) & (gap < window) if window else gap >= 0
        for head in range(aset.n_heads):
            k = last * aset.n_heads + head
            whole = affinity.for_sentences([list(tokens)], str(aset.model), last, head, context=n)[0]
            np.testing.assert_allclose(_softmax(whole, visible), heads[k], atol=2e-3)   # the head, exactly
            one = affinity.for_sentences([list(tokens)], str(aset.model), last, head, context=1)[0]
            gaps.append(np.abs(_softmax(one, visible) - heads[k]).max())
            first = [affinity.for_sentences([list(tokens)], str(aset.model), 0, head, **kw)[0]
                     for kw in ({"context": 2}, {"at_distance": True})]
            np.testing.assert_allclose(*first, rtol=1e-4, atol=1e-4)   # a first layer reads no context
    assert max(gaps) > 0.05   # one token of context is not a later layer's whole head


@pytest.fixture
def gemma_set(tiny_gemma3_dir, tiny_corpus, tmp_path):
    return capture.capture(models.load(str(tiny_gemma3_dir)), tiny_corpus, tmp_path / "set")


def test_a_sets_kept_context_is_what_the_model_reads_and_a_set_kept_before_is_completed_quietly(gemma_set):
    path = affinity.ensure(gemma_set)
    files = [affinity.file_for(gemma_set, context=c) for c in range(1, context.MAX + 1)]
    assert all(f.is_file() for f in files) and affinity.preload(gemma_set.path)
    assert affinity.at_distance_kept(gemma_set.path, context.MAX)
    model, tokens = str(gemma_set.model), [list(t) for t in gemma_set.tokens]
    kept = affinity.for_sentences(tokens, model, 2, 1, context=2)
    affinity._SETS.clear()   # the same text read off the model
    for a, b in zip(kept, affinity.for_sentences(tokens, model, 2, 1, context=2)):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2)   # float16 on disk
    files[1].unlink()   # as a set kept before context was
    affinity._CHECKED.clear()
    affinity._SETS.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert affinity.ensure(gemma_set) == path
    assert files[1].is_file()


@pytest.mark.parametrize("call, said", [
    ("affinity_in_context(tokens, M, 1, 0, 0)", "1 to 3 tokens"),
    ("affinity_in_context(tokens, M, 1, 0, 9)", "1 to 3 tokens"),
    ("affinity_in_context(tokens, M, 1, 0, len(tokens))", "as constants"),
    ("affinity_in_context(tokens, M, 1, 0)", "as constants"),
])
def test_a_bad_context_is_a_one_line_failure(gemma_set, call, said):
    affinity.ensure(gemma_set)
    affinity.preload(gemma_set.path)
    source = f"def attention(tokens):\n    return softmax_rows({call.replace('M', repr(str(gemma_set.model)))})\n"
    failed = sandbox.run(source, [list(t) for t in gemma_set.tokens[:2]])
    assert not failed.ok and said in failed.error and "\n" not in failed.error


def test_a_program_reads_the_context_handed_over_in_the_sandbox(gemma_set):
    affinity.ensure(gemma_set)
    affinity.preload(gemma_set.path)
    model, tokens = str(gemma_set.model), [list(t) for t in gemma_set.tokens[:3]]
    source = f"def attention(tokens):\n    return softmax_rows(affinity_in_context(tokens, {model!r}, 2, 3, 2))\n"
    assert affinity.calls(source) == [(model, 2, 3, False, 2)]
    ran = sandbox.run(source, tokens)
    assert ran.ok, ran.error
    for got, values, t in zip(ran.matrices, affinity.for_sentences(tokens, model, 2, 3, context=2), tokens):
        np.testing.assert_allclose(got, _softmax(values, np.ones((len(t), len(t)), bool)), atol=1e-4)


def _only(edit: str, **settings) -> symbolic.Settings:
    return symbolic.Settings(mutate_weights={k: float(k == edit) for k in symbolic.MUTATE_WEIGHTS},
                             crossover_weights={k: 0.0 for k in symbolic.CROSSOVER_WEIGHTS}, **settings)


def test_a_search_grows_a_heads_context_a_step_at_a_time_and_only_where_the_run_reads_context(gemma_set, tmp_path):
    """Head 2.1 of a tiny Gemma set is rewritten to attend by its affinity read beside 2 tokens: a fit whose
    parent reads none is offered 1 token of context; one whose parent reads 1 is offered 2, and fits better."""
    affinity.ensure(gemma_set)
    affinity.preload(gemma_set.path)
    model, k = str(gemma_set.model), 2 * gemma_set.n_heads + 1
    matrices = []
    for s, tokens in enumerate(gemma_set.tokens):
        heads = gemma_set.matrices(s)
        values = affinity.for_sentences([list(tokens)], model, 2, 1, context=2)[0] * 4.0
        heads[k] = _softmax(values, np.tril(np.ones_like(values, dtype=bool)))
        matrices.append(heads)
    aset = attention_set.write(tmp_path / "beside", dict(gemma_set.meta), matrices)
    affinity.ensure(aset)
    k_all = aset.n_layers * aset.n_heads

    def child(parent: str, **settings):
        request = base.Request("mutate", (base.Parent("p", parent, np.zeros(k_all), 5),), (k,), 1)
        return symbolic.SymbolicOperator(_only("fit_wide", affinity=True, at_distance=True, **settings),
                                         aset_path=aset.path).vary([request])[0]

    seed = "def attention(tokens):\n    return previous_token(tokens)\n"
    first = child(seed, context=True)
    assert f"affinity_in_context(tokens, {model!r}, 2, 1, 1)" in first.source
    assert "affinity_in_context" not in child(seed).source   # a run made before context: none
    second = child(first.source, context=True)
    assert f"affinity_in_context(tokens, {model!r}, 2, 1, 2)" in second.source
    assert second.meta["fit_iou"] > first.meta["fit_iou"]
    first_layer = base.Request("mutate", (base.Parent("p", seed, np.zeros(k_all), 5),), (1,), 1)
    plain = symbolic.SymbolicOperator(_only("fit_wide", affinity=True, at_distance=True, context=True),
                                      aset_path=aset.path).vary([first_layer])[0]
    assert "affinity_in_context" not in plain.source   # a first layer reads no context: none offered
    assert sandbox.run(second.source, [list(t) for t in aset.tokens]).ok
