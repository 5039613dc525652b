"""Costs measured as divergence from the unmodified model's predictions (evo.divergence), on tiny models."""

import math

import numpy as np
import pytest
import torch

from evo import divergence, perplexity, schedule
from tests.test_forward import _own, random_candidates
from tests.test_perplexity import SENTENCES, _loaded


@pytest.fixture(params=["gpt2", "llama"])
def decoder(request, tiny_model_dirs):
    return _loaded(tiny_model_dirs[request.param], causal=True)


def _full_kl(loaded, ids, replaced) -> float:
    """Returns the mean per-token KL(unmodified || replaced) over the whole vocabulary, sentence by sentence."""
    from evo import substitute

    total, count = 0.0, 0
    for i, x in enumerate(ids):
        with torch.no_grad():
            p = torch.log_softmax(loaded.model(input_ids=torch.tensor([x])).logits[0, :-1].double(), -1)
            providers = {h: substitute.Matrices([m[i]]) for h, m in replaced.items()}
            with substitute.heads(loaded.model, providers) as sub:
                sub.select([0], len(x), padding_side="right")
                q = torch.log_softmax(loaded.model(input_ids=torch.tensor([x])).logits[0, :-1].double(), -1)
        total += float((p.exp() * (p - q)).sum())
        count += len(x) - 1
    return total / count


def test_bucketed_divergence_is_a_lower_bound_that_is_exact_with_every_token():
    rng = torch.Generator().manual_seed(0)
    p = torch.log_softmax(torch.randn(5, 50, generator=rng, dtype=torch.float64), -1)
    q = torch.log_softmax(torch.randn(5, 50, generator=rng, dtype=torch.float64), -1)
    full = (p.exp() * (p - q)).sum(-1)
    for k in (1, 5, 20):
        ids = p.topk(k, -1).indices
        bound = divergence.kl(divergence.bucketed(p, ids), divergence.bucketed(q, ids))
        assert torch.all(bound <= full + 1e-12) and torch.all(bound >= 0)
    every = p.topk(49, -1).indices  # the last token is the bucket
    np.testing.assert_allclose(divergence.kl(divergence.bucketed(p, every), divergence.bucketed(q, every)),
                               full, rtol=1e-9)
    assert torch.all(divergence.kl(divergence.bucketed(p, ids), divergence.bucketed(p, ids)) == 0)


def test_own_attention_diverges_by_nothing(decoder):
    meter = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(batch_size=3), costs="divergence")
    [(cost, se)] = meter.alone((1, 0), [_own(decoder, meter.ids, 1, 0)])
    assert abs(cost) < 1e-6 and se < 1e-6


def test_divergence_cost_is_the_kl_from_the_unmodified_model(decoder, monkeypatch):
    monkeypatch.setattr(divergence, "TOP", 10**6)  # every token kept: the bucketed KL is the full KL
    meter = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(batch_size=3), costs="divergence")
    uniform = meter.uniform_matrices()
    [(cost, se)] = meter.alone((1, 1), [uniform])
    expected = _full_kl(decoder, meter.ids, {(1, 1): uniform})
    assert cost == pytest.approx(math.expm1(expected), rel=1e-4)
    assert cost > 0 and 0 < se < cost * 10
    # a divergence differs from the perplexity change on the same text, and the two are fingerprinted apart
    plain = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(batch_size=3))
    [(ppl_cost, _)] = plain.alone((1, 1), [uniform])
    assert ppl_cost != pytest.approx(cost, rel=1e-3)
    assert plain.fingerprint != meter.fingerprint
    assert meter.baseline == pytest.approx(plain.baseline, rel=1e-9)  # the measure itself is unchanged


def test_batched_candidates_and_the_greedy_marginal_agree_with_runs_one_at_a_time(decoder):
    one = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(batch_size=2, candidates_per_pass=1),
                           costs="divergence")
    many = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(batch_size=5, candidates_per_pass=3),
                            costs="divergence")
    candidates = random_candidates(one, seed=1, count=2)
    a, b = one.alone((1, 2), candidates), many.alone((1, 2), candidates)
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-8)
    acc = schedule.Accumulator(one)
    result, cost, _ = acc.trial((1, 2), candidates[0])
    assert cost == pytest.approx(a[0][0], rel=1e-6)
    acc.commit((1, 2), candidates[0], result)
    _, second, _ = acc.trial((0, 1), candidates[1])
    both = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(batch_size=4), costs="divergence")
    total = both.relative(both.run({(1, 2): candidates[0], (0, 1): candidates[1]}), both.reference)[0]
    assert math.log1p(second) == pytest.approx(math.log1p(total) - math.log1p(cost), rel=1e-4, abs=1e-9)


def test_encoders_keep_their_cosine(tiny_model_dirs):
    encoder = _loaded(tiny_model_dirs["bert"], causal=False)
    meter = perplexity.Meter(encoder, SENTENCES, costs="divergence")
    assert meter.costs == "cosine" and meter.metric == "cosine"
