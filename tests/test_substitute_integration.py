"""Head substitution and perplexity on the real default model (gemma-3-270m)."""

import pathlib

import pytest
import torch

from evo import perplexity, substitute

pytestmark = pytest.mark.integration

SENTENCES = [
    "The cat sat on the mat, and the dog sat on the log.",
    "In 1999, Alice met Bob in Paris; they talked for three hours.",
    "She read the book, then she read the book again.",
    "Is it raining? No, it is sunny and warm today.",
]
SEEDS = pathlib.Path(__file__).resolve().parent.parent / "seeds"


@pytest.fixture(scope="module")
def loaded():
    from evo import models

    return models.load()


@pytest.fixture(scope="module")
def batch(loaded):
    encoded = loaded.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def _loss(loaded, ids, mask, **kwargs):
    labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        return loaded.model(input_ids=ids, attention_mask=mask, labels=labels, **kwargs)


def test_default_model_nothing_substituted_matches_eager(loaded, batch):
    reference = _loss(loaded, *batch).loss
    with substitute.heads(loaded.model, {}):
        replaced = _loss(loaded, *batch).loss
    assert float(replaced) == pytest.approx(float(reference), abs=1e-5)


def test_default_model_own_attention_changes_nothing(loaded, batch):
    out = _loss(loaded, *batch, output_attentions=True)
    own = {(5, 1): out.attentions[5][:, 1], (12, 3): out.attentions[12][:, 3], (0, 0): out.attentions[0][:, 0]}
    with substitute.heads(loaded.model, own):
        replaced = _loss(loaded, *batch).loss
    assert float(replaced) == pytest.approx(float(out.loss), abs=1e-5)


def test_default_model_other_attention_changes_the_loss(loaded, batch):
    reference = _loss(loaded, *batch).loss
    n = batch[0].shape[1]
    uniform = torch.tril(torch.ones(n, n))
    uniform = uniform / uniform.sum(dim=1, keepdim=True)
    with substitute.heads(loaded.model, {(3, 2): uniform, (9, 0): uniform}):
        replaced = _loss(loaded, *batch).loss
    assert abs(float(replaced) - float(reference)) > 1e-3


def test_default_model_perplexity_with_a_seed_program(loaded):
    meter = perplexity.Meter(loaded, SENTENCES, perplexity.Settings(batch_size=2))
    assert 1 < meter.baseline < 1000
    alone = perplexity.Meter(loaded, SENTENCES, perplexity.Settings(batch_size=1)).baseline
    assert meter.baseline == pytest.approx(alone, rel=1e-4)
    cost = perplexity.HeadCost(meter, loaded.n_heads)
    first_token = (SEEDS / "first_token.py").read_text()
    [increase] = cost.costs([("first_token", first_token, 4 * loaded.n_heads + 1)])
    assert increase is not None and increase[0] != 0.0 and increase[1] > 0
