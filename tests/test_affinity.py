"""A head's affinity between tokens read alone (evo.affinity): what it is, where it is kept, how programs read
it, and the fits that weigh it. Tiny random models built from a config; no real model."""

import numpy as np
import pytest
import torch

from evo import affinity, capture, models, run, sandbox
from evo.errors import UserError
from evo.prelude import content
from operators import base
from operators.edits import symbolic


@pytest.fixture(autouse=True)
def _forget():
    """Each test starts with no set handed to this process and no model loaded for reading tokens."""
    affinity._SETS.clear()
    affinity._HANDLES.clear()
    affinity._LIVE.clear()
    affinity._CHECKED.clear()
    content._KNOWN.clear()
    yield
    affinity._SETS.clear()
    affinity._HANDLES.clear()
    affinity._LIVE.clear()


@pytest.fixture
def gemma_set(tiny_gemma3_dir, tiny_corpus, tmp_path):
    """Returns a set captured from the tiny Gemma 3 (a sequence-start token, rotary positions, one KV head)."""
    return capture.capture(models.load(str(tiny_gemma3_dir)), tiny_corpus, tmp_path / "set")


def test_a_layer_zero_affinity_is_one_tokens_query_against_the_others_key_as_the_weights_give_them(tiny_gpt2_dir):
    loaded = models.load(str(tiny_gpt2_dir))
    ids = [5, 17, 42, 99]
    found = affinity.vectors(loaded, ids)
    gpt = loaded.model.transformer
    block = gpt.h[0]
    with torch.no_grad():   # GPT-2 reads a token alone at position 0 (its tokenizer adds no start token)
        x = block.ln_1(gpt.wte(torch.tensor(ids)) + gpt.wpe(torch.tensor([0])))
        q, k, _ = block.attn.c_attn(x).split(32, dim=-1)
    d = 8
    for head in range(4):
        expected = (q[:, head * d:(head + 1) * d] @ k[:, head * d:(head + 1) * d].T).numpy() / np.sqrt(d)
        np.testing.assert_allclose(found.matrix([0, 1, 2, 3], 0, head), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_a_first_layers_attention_is_the_softmax_of_its_affinity_at_distance(family, tiny_model_dirs, tiny_corpus,
                                                                           tmp_path):
    loaded = models.load(str(tiny_model_dirs[family]))
    aset = capture.capture(loaded, tiny_corpus, tmp_path / "set")
    config = loaded.model.config
    window = config.sliding_window if "sliding" in (getattr(config, "layer_types", None) or [""])[0] else None
    plain_gaps = []
    for s, tokens in enumerate(aset.tokens[:4]):
        n, heads = len(tokens), aset.matrices(s)   # (K, n, n): layer 0's heads first
        gap = np.subtract.outer(np.arange(n), np.arange(n))
        visible = (gap >= 0) & (gap < window) if window else gap >= 0
        for head in range(aset.n_heads):
            for far in (True, False):
                scores = affinity.for_sentences([list(tokens)], str(aset.model), 0, head, at_distance=far)[0]
                e = np.where(visible, np.exp(scores - scores.max()), 0.0)
                softmax = e / e.sum(axis=1, keepdims=True)
                if far:   # a first layer reads each token's own embedding: its scores, exactly
                    np.testing.assert_allclose(softmax, heads[head], atol=2e-3)
                else:
                    plain_gaps.append(np.abs(softmax - heads[head]).max())
    assert max(plain_gaps) > 0.05   # the tokens alone, without their distance, are not the head


def test_a_model_without_a_rotary_embedding_keeps_no_affinity_at_distance_and_says_so(tiny_gpt2_dir, tiny_corpus,
                                                                                     tmp_path):
    aset = capture.capture(models.load(str(tiny_gpt2_dir)), tiny_corpus, tmp_path / "set")
    affinity.ensure(aset)
    assert affinity.file_for(aset).is_file() and not affinity.file_for(aset, True).exists()
    assert affinity.ensure(aset) == affinity.file_for(aset)   # nothing missing: not read again
    assert affinity.preload(aset.path) and not affinity.at_distance_kept(aset.path)
    source = f"def attention(tokens):\n    return softmax_rows(affinity_at_distance(tokens, {str(aset.model)!r}, 0, 1))\n"
    failed = sandbox.run(source, [list(t) for t in aset.tokens[:2]])
    assert not failed.ok and "no rotary position embedding" in failed.error and "\n" not in failed.error


def test_affinities_kept_before_there_were_any_at_distance_are_completed_without_a_warning(gemma_set):
    import warnings

    path = affinity.ensure(gemma_set)
    far = affinity.file_for(gemma_set, True)
    assert far.is_file() and affinity.preload(gemma_set.path) and affinity.at_distance_kept(gemma_set.path)
    far.unlink()   # as a set kept before affinities at distance were
    affinity._CHECKED.clear()
    affinity._SETS.clear()
    assert affinity.preload(gemma_set.path) and not affinity.at_distance_kept(gemma_set.path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert affinity.ensure(gemma_set) == path
    assert far.is_file()
    model, tokens = str(gemma_set.model), [list(t) for t in gemma_set.tokens[:2]]
    affinity.preload(gemma_set.path)
    kept = affinity.for_sentences(tokens, model, 1, 3, at_distance=True)
    affinity._SETS.clear()   # the same text read off the model
    for a, b in zip(kept, affinity.for_sentences(tokens, model, 1, 3, at_distance=True)):
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2)   # float16 on disk


@pytest.mark.parametrize("family", ["gemma3", "llama"])
def test_a_sets_stored_affinities_are_those_read_off_the_model_for_the_same_text(family, tiny_model_dirs,
                                                                                 tiny_corpus, tmp_path):
    aset = capture.capture(models.load(str(tiny_model_dirs[family])), tiny_corpus, tmp_path / "set")
    path = affinity.ensure(aset)
    assert path.is_file() and affinity.ensure(aset) == path   # read once, then kept
    assert affinity.preload(aset.path)
    last = aset.n_layers - 1
    stored = affinity.for_sentences([list(t) for t in aset.tokens], str(aset.model), last, 3)
    affinity._SETS.clear()   # the same text, as text no set holds: the model loaded and each token read alone
    live = affinity.for_sentences([list(t) for t in aset.tokens], str(aset.model), last, 3)
    for a, b, tokens in zip(stored, live, aset.tokens):
        assert a.shape == (len(tokens), len(tokens))
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2)   # float16 on disk


def test_a_program_reads_the_affinity_handed_over_and_a_bad_call_is_a_one_line_failure(gemma_set):
    affinity.ensure(gemma_set)
    affinity.preload(gemma_set.path)
    model = str(gemma_set.model)
    sentences = [list(t) for t in gemma_set.tokens[:3]]
    source = f"def attention(tokens):\n    return softmax_rows(affinity(tokens, {model!r}, 0, 2))\n"
    outcome = sandbox.run(source, sentences)
    assert outcome.ok, outcome.error
    expected = affinity.for_sentences(sentences, model, 0, 2)
    for got, values in zip(outcome.matrices, expected):
        e = np.exp(values - values.max(axis=1, keepdims=True))   # softmax_rows over each whole row
        np.testing.assert_allclose(got, e / e.sum(axis=1, keepdims=True), atol=1e-4)
    for bad, reason in [("affinity(tokens, tokens[0], 0, 2)", "as constants"),
                        (f"affinity(tokens, {model!r}, 0, 99)", "affinity:"),
                        (f"affinity(tokens, {model!r}, -1, 0)", "as constants"),
                        (" + ".join(f"affinity(tokens, {model!r}, 0, {h % 4}) + affinity(tokens, {model!r}, 1, {h})"
                                    for h in range(4)), "4 heads at most")]:
        failed = sandbox.run(f"def attention(tokens):\n    return softmax_rows({bad})\n", sentences)
        assert not failed.ok and reason in failed.error and "\n" not in failed.error


def test_a_new_run_has_affinities_where_its_model_loads_and_says_why_not_elsewhere(gemma_set, tiny_attention_set):
    found = run.vocabulary("base", gemma_set)
    assert found["affinity"] is True and found["affinity_at_distance"] is True   # a rotary model
    assert affinity.file_for(gemma_set).is_file()
    off = run.vocabulary("base", tiny_attention_set)
    assert off["affinity"] is False and "token ids" in off["affinity_off"]
    assert run.vocabulary("base").get("affinity") is None   # no set given: nothing decided


def _only(edit: str, **settings) -> symbolic.Settings:
    return symbolic.Settings(mutate_weights={k: float(k == edit) for k in symbolic.MUTATE_WEIGHTS},
                             crossover_weights={k: 0.0 for k in symbolic.CROSSOVER_WEIGHTS}, **settings)


@pytest.fixture(params=["gemma3", "gpt2"])
def content_set(request, tiny_model_dirs, tiny_corpus, tmp_path):
    """Returns a set of a tiny model's text whose head 0.2 attends by its affinity alone (the others as the
    model does): at distance for the rotary Gemma, the tokens alone for GPT-2 (which has no rotary embedding).
    The head a fit can only explain with the term."""
    from evo import attention_set

    aset = capture.capture(models.load(str(tiny_model_dirs[request.param])), tiny_corpus, tmp_path / "set")
    affinity.ensure(aset)
    affinity.preload(aset.path)
    far = request.param == "gemma3"
    matrices = []
    for s, tokens in enumerate(aset.tokens):
        heads = aset.matrices(s)
        values = affinity.for_sentences([list(tokens)], str(aset.model), 0, 2, at_distance=far)[0] * 4.0
        e = np.exp(np.where(np.tril(np.ones_like(values)) > 0, values - values.max(), -np.inf))
        heads[2] = e / e.sum(axis=1, keepdims=True)
        matrices.append(heads)
    return attention_set.write(tmp_path / "content", dict(aset.meta), matrices), far


@pytest.mark.parametrize("edit", ["fit_sparse", "fit_wide"])
def test_the_fits_weigh_the_heads_own_affinity_only_where_the_run_has_it(content_set, edit):
    content_set, far = content_set
    affinity.ensure(content_set)
    source = "def attention(tokens):\n    return previous_token(tokens)\n"
    request = base.Request("mutate", (base.Parent("p", source, np.zeros(12), 5),), (2,), 1)
    without = symbolic.SymbolicOperator(_only(edit), aset_path=content_set.path).vary([request])[0]
    within = symbolic.SymbolicOperator(_only(edit, affinity=True, at_distance=True),
                                       aset_path=content_set.path).vary([request])[0]
    assert "affinity" not in without.source
    helper = "affinity_at_distance" if far else "affinity"   # at distance where the model is rotary
    assert f"{helper}(tokens, {str(content_set.model)!r}, 0, 2)" in within.source
    assert within.meta["fit_iou"] > without.meta["fit_iou"] + 0.1
    assert sandbox.run(within.source, [list(t) for t in content_set.tokens]).ok


_STANDALONE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("prog", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
print(json.dumps(mod.attention(json.loads(sys.argv[2])).tolist()))
"""


def test_an_exported_program_with_the_term_runs_on_its_own_reading_the_model(gemma_set, tmp_path):
    import json
    import os
    import subprocess
    import sys

    model = str(gemma_set.model)
    path = tmp_path / "head.py"
    path.write_text(f'"""L0.H2: the tokens\' own affinity."""\nfrom evo.prelude import affinity, softmax_rows\n\n\n'
                    f"def attention(tokens):\n    return softmax_rows(affinity(tokens, {model!r}, 0, 2))\n")
    tokens = list(gemma_set.tokens[1])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", _STANDALONE, str(path), json.dumps(tokens)],
                          capture_output=True, text=True, timeout=120, env=env, cwd="/")
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
    values = affinity.vectors(models.load(model), gemma_set.meta["token_ids"][1]).matrix(
        list(range(len(tokens))), 0, 2)
    e = np.exp(values - values.max(axis=1, keepdims=True))
    np.testing.assert_allclose(json.loads(done.stdout), e / e.sum(axis=1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_affinity_file_is_read_again_with_a_warning_and_never_handed_out(gemma_set, damage):
    from safetensors.numpy import load_file

    path = affinity.ensure(gemma_set)
    good, before = path.read_bytes(), load_file(str(path))
    path.write_bytes(good[: len(good) // 2] if damage == "truncate" else b"not a safetensors file at all")
    assert affinity.preload(gemma_set.path) is False   # damaged: nothing handed out from it
    assert affinity.stored(gemma_set, 2) is None        # nor measured on (evo.explanation)
    with pytest.warns(UserWarning, match="damaged"):
        assert affinity.ensure(gemma_set) == path
    after = load_file(str(path))   # the same values (the header's metadata order may differ)
    assert sorted(after) == sorted(before) and all(np.array_equal(after[k], before[k]) for k in before)
    assert affinity.preload(gemma_set.path)
    assert np.array_equal(affinity.stored(gemma_set, 2)[1], before["s1"])


def test_a_set_folder_that_cannot_be_written_is_one_line_and_the_run_goes_without(gemma_set, monkeypatch):
    import errno
    import tempfile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    with pytest.raises(UserError) as caught:
        affinity.ensure(gemma_set)
    assert "No space left on device" in str(caught.value) and "\n" not in str(caught.value)
    off = run.vocabulary("base", gemma_set)
    assert off["affinity"] is False and "No space left" in off["affinity_off"]
    assert not affinity.file_for(gemma_set).exists()


def test_text_that_is_no_one_token_is_read_as_its_pieces(gemma_set):
    model = str(gemma_set.model)
    tokens = list(gemma_set.tokens[0][:3]) + [" zzqxv42"]
    found = affinity.for_sentences([tokens], model, 1, 0)[0]
    assert found.shape == (4, 4) and np.isfinite(found).all()
    pieces = affinity.kept._live(model).ids(tokens)[-1]
    assert isinstance(pieces, tuple) and len(pieces) > 1


def test_replacing_heads_reads_new_text_off_the_model_already_loaded_not_a_second_copy(tiny_gemma3_dir, monkeypatch):
    from evo import perplexity

    loaded = models.load(str(tiny_gemma3_dir))
    sentences = ["The cat sat on the mat.", "A dog ran home."]
    meter = perplexity.Meter(loaded, sentences)
    expected = affinity.vectors(loaded, [i for ids in meter.ids for i in ids])   # read before loads are refused
    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("the model was loaded a second time"))
    got = affinity.for_sentences(meter.tokens, loaded.name, 1, 2)
    for m, ids in zip(got, meter.ids):
        rows = [[i for ids_ in meter.ids for i in ids_].index(t) for t in ids]
        np.testing.assert_allclose(m, expected.matrix(rows, 1, 2), rtol=1e-5, atol=1e-5)
    affinity._LIVE.clear()
    monkeypatch.undo()
    half = models.load(str(tiny_gemma3_dir), dtype="bfloat16")
    assert not affinity.adopt(half)       # a model loaded in another precision would not give the kept values


def test_a_term_invented_for_a_head_is_weighed_beside_the_heads_own_affinity(tiny_gemma3_dir, tiny_corpus,
                                                                           tmp_path):
    from evo import attention_set, terms

    aset = capture.capture(models.load(str(tiny_gemma3_dir)), tiny_corpus, tmp_path / "set")
    affinity.ensure(aset)
    affinity.preload(aset.path)
    matrices = []
    for s, tokens in enumerate(aset.tokens):   # head 0.2: its affinity at distance, and keys at even positions
        heads, n = aset.matrices(s), len(tokens)
        values = 4.0 * affinity.for_sentences([list(tokens)], str(aset.model), 0, 2, at_distance=True)[0]
        values = values + 3.0 * (np.arange(n) % 2 == 0)[None, :]
        e = np.exp(np.where(np.tril(np.ones((n, n))) > 0, values - values.max(), -np.inf))
        heads[2] = e / e.sum(axis=1, keepdims=True)
        matrices.append(heads)
    content = attention_set.write(tmp_path / "even", dict(aset.meta), matrices)
    affinity.ensure(content)
    even = terms.Term("_even_keys", 'def _even_keys(tokens):\n    """On keys at even positions."""\n'
                      "    n = len(tokens)\n    return np.tile((np.arange(n) % 2 == 0).astype(float), (n, 1))\n",
                      "test", 0, 0, 0.0)
    request = base.Request("mutate", (base.Parent("p", "def attention(tokens):\n    return sink(tokens)\n",
                                                  np.zeros(12), 5),), (2,), 1)
    operator = symbolic.SymbolicOperator(_only("invent_term", affinity=True, at_distance=True), aset_path=content.path)
    source, meta = operator.fit_terms(request, [even])
    assert "_even_keys(tokens)" in source   # kept: it explains what the head's whole table misses
    assert f"affinity_at_distance(tokens, {str(content.model)!r}, 0, 2)" in source
    assert meta["fit_iou"] > 0.9
