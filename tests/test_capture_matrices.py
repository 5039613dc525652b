"""Captured matrices equal the model's own unpadded forward pass, on every architecture."""

import functools

import numpy as np
import pytest
import torch
import transformers as T

from evo import capture, models

FAMILIES = ["gpt2", "llama", "gemma3", "bert"]


@functools.lru_cache(maxsize=None)
def _plain(model_dir):
    """Returns (model, tokenizer) loaded directly with transformers, not through evo.models."""
    config = T.AutoConfig.from_pretrained(model_dir)
    auto = T.AutoModel if config.model_type == "bert" else T.AutoModelForCausalLM
    model = auto.from_pretrained(model_dir, attn_implementation="eager").eval()
    return model, T.AutoTokenizer.from_pretrained(model_dir)


def _direct(model_dir, sentence: str) -> np.ndarray:
    """Returns (L*H, n, n) attention from a plain single-sentence forward pass of the full model."""
    model, tokenizer = _plain(model_dir)
    ids = tokenizer(sentence, return_tensors="pt")
    with torch.no_grad():
        out = model(**ids, output_attentions=True)
    att = torch.stack(out.attentions, dim=1)[0]  # (L, H, n, n)
    return att.reshape(-1, att.shape[-1], att.shape[-1]).numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_padded_batches_equal_direct_unpadded_forward(family, tiny_model_dirs, tiny_corpus, tmp_path):
    loaded = models.load(str(tiny_model_dirs[family]))
    aset = capture.capture(loaded, tiny_corpus, tmp_path / "set", batch_size=4)
    lengths = [len(t) for t in aset.tokens]
    assert len(set(lengths)) > 1, "the corpus must produce padded batches"
    for i, sentence in enumerate(tiny_corpus.sentences):
        expected = _direct(tiny_model_dirs[family], sentence)
        got = aset.matrices(i)
        assert got.dtype == np.float32 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=2e-3, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_rows_sum_to_one_and_decoders_see_no_future(family, tiny_model_dirs, tiny_corpus, tmp_path):
    loaded = models.load(str(tiny_model_dirs[family]))
    aset = capture.capture(loaded, tiny_corpus, tmp_path / "set", batch_size=3)
    assert aset.causal == (family != "bert")
    for i in range(len(aset)):
        m = aset.matrices(i)
        np.testing.assert_allclose(m.sum(axis=-1), 1.0, atol=5e-3)
        upper = np.triu(np.ones(m.shape[-2:], dtype=bool), k=1)
        if aset.causal:
            assert np.all(m[:, upper] == 0)
        else:
            assert np.any(m[:, upper] > 0.01)


def test_results_do_not_depend_on_batch_size(tiny_llama_dir, tiny_corpus, tmp_path):
    loaded = models.load(str(tiny_llama_dir))
    one = capture.capture(loaded, tiny_corpus, tmp_path / "one", batch_size=1)
    many = capture.capture(loaded, tiny_corpus, tmp_path / "many", batch_size=6)
    assert one.tokens == many.tokens
    for i in range(len(one)):
        np.testing.assert_allclose(one.matrices(i), many.matrices(i), atol=1e-3, rtol=0)


def test_heads_are_indexed_layer_major(tiny_gpt2_dir, tiny_corpus, tmp_path):
    loaded = models.load(str(tiny_gpt2_dir))
    aset = capture.capture(loaded, tiny_corpus, tmp_path / "set")
    expected = _direct(tiny_gpt2_dir, tiny_corpus.sentences[1]).reshape(2, 4, *aset.matrices(1).shape[-2:])
    layer, head = aset.heads[6]
    assert (layer, head) == (1, 2)
    np.testing.assert_allclose(aset.matrices(1)[6], expected[1, 2], atol=2e-3)


def test_meta_records_tokens_ids_and_settings(tiny_bert_dir, tiny_corpus, tmp_path):
    loaded = models.load(str(tiny_bert_dir))
    aset = capture.capture(loaded, tiny_corpus, tmp_path / "set", max_tokens=32)
    assert aset.tokens[0][0] == "[CLS]" and aset.tokens[0][-1] == "[SEP]"
    assert aset.tokens[0][1:3] == ["the", " cat"]
    assert [len(t) for t in aset.tokens] == [len(ids) for ids in aset.meta["token_ids"]]
    assert aset.meta["corpus"]["fingerprint"] == tiny_corpus.fingerprint
    assert aset.meta["max_tokens"] == 32 and aset.meta["dtype"] == "float32"
    assert aset.meta["stats"]["tokens"] == sum(len(t) for t in aset.tokens)


def test_long_sentences_are_truncated_with_a_warning(tiny_bert_dir, tiny_corpus, tmp_path):
    loaded = models.load(str(tiny_bert_dir))
    with pytest.warns(UserWarning, match=r"longer than --sentence-tokens 8 and were truncated"):
        aset = capture.capture(loaded, tiny_corpus, tmp_path / "set", max_tokens=8)
    assert max(len(t) for t in aset.tokens) == 8
    assert all(t[-1] == "[SEP]" for t in aset.tokens)  # the tokenizer's own truncation keeps the specials
    assert aset.meta["truncated"] and "truncated" in aset.meta["warnings"][-1]
