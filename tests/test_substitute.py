"""Exactness of head substitution on small random models of each family."""

import numpy as np
import pytest
import torch
import transformers as T

from evo import substitute


def _gpt2():
    config = T.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=100, n_positions=64,
                          bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    return T.GPT2LMHeadModel(config)


def _llama_gqa():
    config = T.LlamaConfig(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
                           intermediate_size=64, vocab_size=100, attn_implementation="eager")
    return T.LlamaForCausalLM(config)


def _gemma3():
    config = T.Gemma3TextConfig(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1, hidden_size=32,
                                head_dim=8, intermediate_size=64, vocab_size=100, sliding_window=4,
                                layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                                attn_implementation="eager")
    return T.Gemma3ForCausalLM(config)


def _bert():
    config = T.BertConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32, intermediate_size=64,
                          vocab_size=100, attn_implementation="eager")
    return T.BertModel(config)


FAMILIES = {"gpt2": _gpt2, "llama-gqa": _llama_gqa, "gemma3": _gemma3, "bert": _bert}


def _model(family):
    torch.manual_seed(0)
    return FAMILIES[family]().eval()


def _batch():
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 100, (3, 12), generator=generator)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    return ids, mask


def _output(model, ids, mask, **kwargs):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, **kwargs)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


@pytest.mark.parametrize("family", FAMILIES)
def test_nothing_substituted_reproduces_eager(family):
    model = _model(family)
    ids, mask = _batch()
    reference = _output(model, ids, mask)
    with substitute.heads(model, {}):
        assert model.config._attn_implementation.startswith("headcode_substitute")
        replaced = _output(model, ids, mask)
    assert model.config._attn_implementation == "eager"
    real = mask.bool()
    torch.testing.assert_close(replaced[real], reference[real], rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_own_recorded_attention_changes_nothing(family):
    model = _model(family)
    ids, mask = _batch()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    reference = _output(model, ids, mask)
    own = {(1, 2): out.attentions[1][:, 2], (0, 0): out.attentions[0][:, 0]}
    with substitute.heads(model, own):
        replaced = _output(model, ids, mask)
    real = mask.bool()
    torch.testing.assert_close(replaced[real], reference[real], rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_other_attention_changes_the_output(family):
    model = _model(family)
    ids, mask = _batch()
    reference = _output(model, ids, mask)
    first_token = torch.zeros(12, 12)
    first_token[:, 0] = 1.0
    with substitute.heads(model, {(1, 3): first_token}):
        replaced = _output(model, ids, mask)
    assert (replaced[0] - reference[0]).abs().max() > 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_substitution_reaches_the_returned_attentions(family):
    model = _model(family)
    ids, mask = _batch()
    diagonal = torch.eye(12)
    with substitute.heads(model, {(0, 1): diagonal}):
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    torch.testing.assert_close(out.attentions[0][:, 1], diagonal.expand(3, -1, -1))
    assert not torch.allclose(out.attentions[0][:, 0], diagonal.expand(3, -1, -1))


def test_context_restores_the_model_after_an_error():
    model = _model("llama-gqa")
    with pytest.raises(RuntimeError, match="boom"):
        with substitute.heads(model, {(0, 0): torch.eye(4)}):
            raise RuntimeError("boom")
    assert model.config._attn_implementation == "eager"
    assert not any(k.startswith("headcode_substitute") for k in T.AttentionInterface._global_mapping)


def test_causal_mask_is_kept_inside_the_context():
    model = _model("gpt2")
    ids, mask = _batch()
    with substitute.heads(model, {}):
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, output_attentions=True)
    probabilities = out.attentions[1]
    upper = torch.triu(torch.ones(12, 12, dtype=torch.bool), diagonal=1)
    assert probabilities[..., upper].abs().max() == 0


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_matrices_are_placed_on_the_padding_side(padding_side):
    a, b = np.full((3, 3), 1 / 3), np.eye(2)
    matrices = substitute.Matrices([a, b])
    matrices.select([1, 0], length=4, padding_side=padding_side)
    values, rows = matrices.probabilities(2, 4, 4)
    start = 0 if padding_side == "right" else 2
    np.testing.assert_allclose(values[0, start:start + 2, start:start + 2].numpy(), b)
    assert rows[0].tolist() == [start <= i < start + 2 for i in range(4)]
    assert rows[1].sum() == 3


def test_matrices_without_a_selected_batch_fail_clearly():
    matrices = substitute.Matrices([np.eye(3)])
    with pytest.raises(RuntimeError, match="select"):
        matrices.probabilities(1, 3, 3)


def test_matrices_of_the_wrong_length_fail_clearly():
    matrices = substitute.Matrices([np.eye(3)])
    matrices.select([0], length=5)
    with pytest.raises(ValueError, match=r"\(1, 5, 5\).*\(1, 6, 6\)"):
        matrices.probabilities(1, 6, 6)


def test_heads_outside_the_model_are_rejected():
    model = _model("gpt2")
    with pytest.raises(ValueError, match="head 2.0 does not exist"):
        with substitute.heads(model, {(2, 0): torch.eye(3)}):
            pass
    with pytest.raises(ValueError, match="head 0.4 does not exist"):
        with substitute.heads(model, {(0, 4): torch.eye(3)}):
            pass


def test_attention_modules_are_found_in_layer_order():
    for family in FAMILIES:
        model = _model(family)
        layers = substitute.attention_modules(model)
        assert list(layers) == list(range(model.config.num_hidden_layers))
