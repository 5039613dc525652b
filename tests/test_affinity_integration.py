"""A head's affinity at distance on the real default model: a first layer's attention, exactly."""

import numpy as np
import pytest

from evo import affinity, capture, sandbox


@pytest.mark.integration
def test_gemma_first_layer_heads_are_the_softmax_of_their_affinity_at_distance():
    aset = capture.ensure(model="gemma-3-270m", split="search")
    affinity.ensure(aset)
    affinity.preload(aset.path)
    model, sentences = str(aset.model), [list(t) for t in aset.tokens[:12]]
    for head in range(aset.n_heads):
        source = f"def attention(tokens):\n    return softmax_rows(affinity_at_distance(tokens, {model!r}, 0, {head}))\n"
        ran = sandbox.run(source, sentences)   # as a program reads it: handed over from the kept file
        assert ran.ok, ran.error
        alone = sandbox.run(source.replace("affinity_at_distance", "affinity"), sentences)
        ious, plain = [], []
        for s, (got, tokens) in enumerate(zip(ran.matrices, sentences)):
            target = aset.matrices(s)[head].astype(np.float64)   # (n, n) layer 0's head
            causal = np.tril(got)
            causal /= causal.sum(axis=1, keepdims=True)
            ious.append(np.mean(np.minimum(causal, target).sum(1) / np.maximum(causal, target).sum(1)))
            other = np.tril(alone.matrices[s])
            other /= other.sum(axis=1, keepdims=True)
            plain.append(np.mean(np.minimum(other, target).sum(1) / np.maximum(other, target).sum(1)))
        assert np.mean(ious) > 0.98, (head, np.mean(ious))     # float16 values kept: all but exactly
        assert np.mean(plain) < np.mean(ious) - 0.05, head      # the tokens alone are not the head
