"""On the real default model (gemma-3-270m): capture equals a direct forward pass."""

import numpy as np
import pytest
import torch

from evo import capture, corpus, models

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gemma():
    return models.load("gemma-3-270m")


def test_default_model_shape_and_tokens(gemma):
    assert (gemma.n_layers, gemma.n_heads, gemma.causal) == (18, 4, True)
    ids = gemma.tokenizer("Hello world,\nthis is a test.")["input_ids"]
    from evo import tokens

    assert tokens.render(gemma.tokenizer, ids) == ["<bos>", "Hello", " world", ",", "\n", "this", " is", " a",
                                                    " test", "."]


def test_capture_equals_direct_forward_pass(gemma, tmp_path):
    sentences = corpus.load(None, "search").sentences[:6]
    small = corpus.Corpus(sentences=sentences, source="builtin:search[:6]", fingerprint=corpus.fingerprint(sentences))
    aset = capture.capture(gemma, small, tmp_path / "set", batch_size=3)
    assert aset.heads[-1] == (17, 3)
    for i, text in enumerate(sentences):
        enc = gemma.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            out = gemma.model(**enc, output_attentions=True)
        direct = torch.stack(out.attentions, dim=1)[0].reshape(72, *out.attentions[0].shape[-2:]).numpy()
        got = aset.matrices(i)
        np.testing.assert_allclose(got, direct, atol=2e-3, rtol=0)
        np.testing.assert_allclose(got.sum(-1), 1.0, atol=5e-3)
        assert np.all(np.triu(got, k=1) == 0)
