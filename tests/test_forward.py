"""evo.forward: batched runs on real tokens only, and runs that start at a later layer."""

import numpy as np
import pytest
import torch

from evo import forward, perplexity, substitute
from tests.test_perplexity import SENTENCES, _loaded


@pytest.fixture(params=["gpt2", "llama", "gemma3", "bert"])
def loaded(request, tiny_model_dirs):
    return _loaded(tiny_model_dirs[request.param], causal=request.param != "bert")


def _ids(loaded):
    return perplexity.encode(loaded.tokenizer, SENTENCES, 64)


def test_nll_equals_a_plain_forward_pass_sentence_by_sentence(tiny_model_dirs):
    for family in ("gpt2", "llama", "gemma3"):
        loaded = _loaded(tiny_model_dirs[family], causal=True)
        ids = _ids(loaded)
        result = forward.Runner(loaded, ids, batch_size=3).run()
        for i, x in enumerate(ids):
            with torch.no_grad():
                logits = loaded.model(input_ids=torch.tensor([x])).logits[0, :-1].double()
            nll = torch.nn.functional.cross_entropy(logits, torch.tensor(x[1:]), reduction="sum")
            assert float(result.nll[i]) == pytest.approx(float(nll), rel=1e-5), family
            assert int(result.counts[i]) == len(x) - 1


def test_starting_at_a_layer_reproduces_the_full_run_with_a_head_replaced(loaded):
    ids = _ids(loaded)
    runner = forward.Runner(loaded, ids, batch_size=3)
    reference = runner.run(record=True)
    last = loaded.n_layers - 1
    uniform = [perplexity.uniform(len(x), loaded.causal) for x in ids]
    with substitute.heads(loaded.model, {(last, 1): substitute.Matrices(uniform)}) as sub:
        whole = runner.run(sub)
        part = runner.run(sub, start=last, inputs=reference.inputs)
    assert runner.can_start_later is True
    for a, b in zip([whole.nll, whole.pooled], [part.nll, part.pooled]):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    changed = whole.nll if loaded.causal else whole.pooled
    same = reference.nll if loaded.causal else reference.pooled
    assert not torch.allclose(changed, same)


def test_recording_from_a_later_layer_keeps_the_earlier_inputs(loaded):
    ids = _ids(loaded)
    runner = forward.Runner(loaded, ids, batch_size=4)
    reference = runner.run(record=True)
    again = runner.run(start=1, inputs=reference.inputs, record=True)
    assert sorted(reference.inputs) == sorted(again.inputs) == list(range(loaded.n_layers))
    for layer in reference.inputs:
        assert [x.shape[0] for x in again.inputs[layer]] == [len(x) for x in ids]
        for before, after in zip(reference.inputs[layer], again.inputs[layer]):
            torch.testing.assert_close(before, after)


def test_a_block_that_cannot_start_later_falls_back_to_whole_runs(tiny_model_dirs):
    loaded = _loaded(tiny_model_dirs["llama"], causal=True)
    ids = _ids(loaded)
    runner = forward.Runner(loaded, ids, batch_size=4)
    reference = runner.run(record=True)
    wrong = {layer: [x * 0 for x in states] for layer, states in reference.inputs.items()}
    result = runner.run(start=1, inputs=wrong)
    assert runner.can_start_later is False
    torch.testing.assert_close(result.nll, reference.nll)


def test_head_cost_alone_has_a_standard_error_and_matches_a_full_measure(tiny_model_dirs):
    loaded = _loaded(tiny_model_dirs["gemma3"], causal=True)
    meter = perplexity.Meter(loaded, SENTENCES, perplexity.Settings(batch_size=3))
    uniform = meter.uniform_matrices()
    [(cost, se)] = meter.alone((2, 0), [uniform])
    assert cost == pytest.approx(meter.measure({(2, 0): uniform}) / meter.baseline - 1.0, rel=1e-6)
    assert 0 < se < abs(cost) * 10
    [(zero, zero_se)] = meter.alone((2, 0), [[m for m in _own(loaded, meter.ids, 2, 0)]])
    assert abs(zero) < 1e-6 and zero_se < 1e-6


def _own(loaded, ids, layer, head):
    out = []
    for x in ids:
        with torch.no_grad():
            result = loaded.model(input_ids=torch.tensor([x]), output_attentions=True)
        out.append(np.asarray(result.attentions[layer][0, head].double().numpy()))
    return out


def random_candidates(meter, seed: int, count: int) -> list[list[np.ndarray]]:
    """Returns uniform attention and `count` random causal attentions, row-normalised, for the meter's text."""
    rng = np.random.default_rng(seed)
    candidates = [meter.uniform_matrices()] + [
        [np.tril(rng.random((len(x), len(x)))) for x in meter.ids] for _ in range(count)]
    return [[m / m.sum(1, keepdims=True) for m in c] for c in candidates]


def test_candidates_batched_together_cost_what_they_cost_one_at_a_time(tiny_model_dirs):
    loaded = _loaded(tiny_model_dirs["llama"], causal=True)
    one = perplexity.Meter(loaded, SENTENCES, perplexity.Settings(batch_size=4, candidates_per_pass=1))
    many = perplexity.Meter(loaded, SENTENCES, perplexity.Settings(batch_size=5, candidates_per_pass=3))
    candidates = random_candidates(one, seed=0, count=3)
    a, b = one.alone((1, 2), candidates), many.alone((1, 2), candidates)
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-7)
    assert len({round(c, 9) for c, _ in a}) == 4
