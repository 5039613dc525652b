"""Perplexity and embedding cosine with heads replaced, on tiny random models."""

import math
import types

import numpy as np
import pytest
import torch

from evo import perplexity

SENTENCES = [
    "The cat sat on the mat.",
    "Alice met Bob in Paris, and Bob met Alice in Rome.",
    "Step 1: open the box.",
    "Hi",
    "Numbers: 1, 2, 3, 5, 8.",
    "The quick brown fox jumps over the lazy dog, then the quick brown fox sleeps.",
    "Is it raining? No, it is sunny and warm today.",
]


def _loaded(path, causal):
    """Returns a LoadedModel-shaped object for a saved tiny model."""
    import transformers as T

    cls = T.AutoModelForCausalLM if causal else T.AutoModel
    model = cls.from_pretrained(path, attn_implementation="eager").eval()
    config = model.config
    return types.SimpleNamespace(name=str(path), model=model, tokenizer=T.AutoTokenizer.from_pretrained(path),
                                 causal=causal, n_layers=config.num_hidden_layers,
                                 n_heads=config.num_attention_heads, device=torch.device("cpu"))


@pytest.fixture(params=["gpt2", "llama", "gemma3"])
def decoder(request, tiny_model_dirs):
    return _loaded(tiny_model_dirs[request.param], causal=True)


@pytest.fixture
def encoder(tiny_model_dirs):
    return _loaded(tiny_model_dirs["bert"], causal=False)


def _own_attention(loaded, ids, layer, head):
    """Returns the model's own attention of one head, per sentence run alone."""
    out = []
    for x in ids:
        with torch.no_grad():
            result = loaded.model(input_ids=torch.tensor([x]), output_attentions=True)
        out.append(result.attentions[layer][0, head].double().numpy())
    return out


def test_padding_does_not_change_perplexity(decoder):
    alone = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(batch_size=1)).baseline
    batched = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(batch_size=4)).baseline
    assert batched == pytest.approx(alone, rel=1e-5)


def test_perplexity_is_token_weighted_over_sentences(decoder):
    meter = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(batch_size=3))
    total, count = 0.0, 0
    for x in meter.ids:
        if len(x) < 2:
            continue
        with torch.no_grad():
            loss = decoder.model(input_ids=torch.tensor([x]), labels=torch.tensor([x])).loss
        total += float(loss) * (len(x) - 1)
        count += len(x) - 1
    assert meter.n_tokens == count
    assert meter.baseline == pytest.approx(math.exp(total / count), rel=1e-5)


def test_special_tokens_are_added_as_the_tokenizer_does(tiny_model_dirs):
    loaded = _loaded(tiny_model_dirs["llama"], causal=True)
    meter = perplexity.Meter(loaded, SENTENCES[:2])
    assert all(t[0] == "<s>" for t in meter.tokens)
    assert meter.ids[0] == loaded.tokenizer("The cat sat on the mat.")["input_ids"]


def test_long_sentences_are_truncated_to_max_tokens(decoder):
    meter = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(max_tokens=5))
    assert max(len(x) for x in meter.ids) == 5
    assert [len(t) for t in meter.tokens] == [len(x) for x in meter.ids]


def test_own_attention_leaves_perplexity_unchanged(decoder):
    meter = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(batch_size=4))
    own = _own_attention(decoder, meter.ids, 1, 2)
    assert meter.measure({(1, 2): own}) == pytest.approx(meter.baseline, rel=1e-5)
    assert meter.cost(meter.measure({(1, 2): own})) == pytest.approx(0.0, abs=1e-5)


def test_uniform_attention_changes_perplexity(decoder):
    meter = perplexity.Meter(decoder, SENTENCES, perplexity.Settings(batch_size=4))
    changed = meter.measure({(0, 1): meter.uniform_matrices(), (1, 0): meter.uniform_matrices()})
    assert abs(changed / meter.baseline - 1) > 1e-3


def test_wrong_number_of_matrices_is_rejected(decoder):
    meter = perplexity.Meter(decoder, SENTENCES)
    with pytest.raises(ValueError, match="6 matrices for 7 sentences"):
        meter.measure({(0, 0): meter.uniform_matrices()[:6]})


def test_encoder_measures_embedding_cosine(encoder):
    meter = perplexity.Meter(encoder, SENTENCES, perplexity.Settings(batch_size=3))
    assert meter.metric == "cosine"
    assert meter.baseline == pytest.approx(1.0, abs=1e-6)
    own = _own_attention(encoder, meter.ids, 0, 3)
    assert meter.measure({(0, 3): own}) == pytest.approx(1.0, abs=1e-6)
    changed = meter.measure({(0, 3): meter.uniform_matrices(), (1, 1): meter.uniform_matrices()})
    assert changed < 1.0 - 1e-4
    assert meter.cost(changed) == pytest.approx(1.0 - changed)


def test_encoder_cosine_does_not_depend_on_padding(encoder):
    uniform = {(1, 0): None}
    values = []
    for batch_size in (1, 4):
        meter = perplexity.Meter(encoder, SENTENCES, perplexity.Settings(batch_size=batch_size))
        uniform[(1, 0)] = meter.uniform_matrices()
        values.append(meter.measure(uniform))
    assert values[0] == pytest.approx(values[1], abs=1e-6)


def test_uniform_matrices_respect_causality():
    np.testing.assert_allclose(perplexity.uniform(3, causal=True),
                               [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(perplexity.uniform(2, causal=False), np.full((2, 2), 0.5))


def test_empty_text_is_a_user_error(decoder):
    from evo.errors import UserError

    with pytest.raises(UserError, match="no sentences"):
        perplexity.Meter(decoder, [])


PREVIOUS_TOKEN = '''
def attention(tokens):
    import numpy as np
    n = len(tokens)
    m = np.zeros((n, n))
    for i in range(n):
        m[i, max(i - 1, 0)] = 1.0
    return m
'''

BROKEN = '''
def attention(tokens):
    return 1 / 0
'''

FIRST = '''
def attention(tokens):
    import numpy as np
    m = np.zeros((len(tokens), len(tokens)))
    m[:, 0] = 1.0
    return m
'''


def test_program_matrices_are_normalised_and_cached(decoder):
    meter = perplexity.Meter(decoder, SENTENCES[:3])
    first = meter.matrices(PREVIOUS_TOKEN)
    assert [m.shape for m in first] == [(len(t), len(t)) for t in meter.tokens]
    np.testing.assert_allclose(first[0].sum(axis=1), 1.0)
    assert meter.matrices("# same program, another comment\n" + PREVIOUS_TOKEN) is first


def test_failing_program_raises_program_error(decoder):
    meter = perplexity.Meter(decoder, SENTENCES[:2])
    with pytest.raises(perplexity.ProgramError, match="ZeroDivisionError|division"):
        meter.matrices(BROKEN)


def test_head_cost_is_the_relative_increase_of_one_head_alone(tiny_model_dirs):
    loaded = _loaded(tiny_model_dirs["llama"], causal=True)
    meter = perplexity.Meter(loaded, SENTENCES)
    cost = perplexity.HeadCost(meter, n_heads=4)
    costs = cost.costs([("p1", PREVIOUS_TOKEN, 5), ("p2", BROKEN, 5), ("p1", PREVIOUS_TOKEN, 0)])
    expected = meter.measure({(1, 1): meter.matrices(PREVIOUS_TOKEN)}) / meter.baseline - 1
    assert costs[0][0] == pytest.approx(expected)
    assert costs[0][1] > 0  # its standard error over sentences
    assert costs[1] is None
    assert costs[2][0] != pytest.approx(costs[0][0])


def test_head_cost_measures_each_program_and_head_once(tiny_model_dirs, monkeypatch):
    loaded = _loaded(tiny_model_dirs["gpt2"], causal=True)
    meter = perplexity.Meter(loaded, SENTENCES[:3])
    cost = perplexity.HeadCost(meter, n_heads=4)
    _ = meter.baseline
    calls = []
    alone = meter.alone
    monkeypatch.setattr(meter, "alone", lambda head, c: calls.append((head, len(c))) or alone(head, c))
    first = cost.costs([("a", PREVIOUS_TOKEN, 2), ("c", FIRST, 2)])
    again = cost.costs([("b", "# renamed\n" + PREVIOUS_TOKEN, 2)])
    assert first[0] == again[0]
    assert calls == [((0, 2), 2)]  # both programs for head 0.2 in one batched measurement
