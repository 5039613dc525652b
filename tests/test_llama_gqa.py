"""A Llama-style model with grouped-query attention end to end: nothing in capture, substitution, search or
the report assumes four heads per layer, one key-value head per query head, or a `<bos>` sink."""

import re

import numpy as np
import pytest
import torch
import transformers as T

from evo import attention_set, capture, cli, models, substitute
from tests import conftest


@pytest.fixture(scope="module")
def gqa_dir(tmp_path_factory):
    """Returns a saved random Llama: 3 layers x 6 query heads sharing 2 key-value heads, no BOS token added."""
    torch.manual_seed(7)
    tokenizer = conftest._sentencepiece_tokenizer()
    tokenizer.add_bos_token = False   # like SmolLM2: position 0 is the sentence's first word
    config = T.LlamaConfig(num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2, hidden_size=48,
                           intermediate_size=64, max_position_embeddings=128, vocab_size=len(tokenizer),
                           bos_token_id=1, eos_token_id=2, pad_token_id=3, attn_implementation="eager",
                           initializer_range=0.3)
    path = tmp_path_factory.mktemp("gqa") / "llama-gqa"
    T.LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_capture_records_every_query_head_and_matches_the_model(gqa_dir, tiny_corpus, tmp_path):
    loaded = models.load(str(gqa_dir))
    assert (loaded.n_layers, loaded.n_heads) == (3, 6)
    aset = capture.capture(loaded, tiny_corpus, tmp_path / "set")
    assert (aset.n_layers, aset.n_heads) == (3, 6)
    ids = loaded.tokenizer(tiny_corpus.sentences[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = loaded.model(input_ids=ids, output_attentions=True)
    expected = torch.cat(out.attentions, dim=1)[0].numpy()   # (layers * heads, n, n)
    np.testing.assert_allclose(aset.matrices(0), expected, atol=2e-3)


def test_substitution_with_nothing_replaced_is_exact_and_a_replaced_head_changes_only_its_group(gqa_dir):
    loaded = models.load(str(gqa_dir))
    ids = torch.tensor([[5, 9, 14, 22, 31, 7, 12]])
    with torch.no_grad():
        plain = loaded.model(input_ids=ids).logits
        with substitute.heads(loaded.model, {}):
            same = loaded.model(input_ids=ids).logits
        uniform = np.tril(np.ones((7, 7))) / np.arange(1, 8)[:, None]
        with substitute.heads(loaded.model, {(1, 4): uniform}) as sub:
            changed = loaded.model(input_ids=ids, output_attentions=True)
    assert torch.equal(plain, same)
    assert not torch.allclose(plain, changed.logits)
    np.testing.assert_allclose(changed.attentions[1][0, 4].numpy(), uniform, atol=1e-6)


def test_a_search_and_its_report_on_the_gqa_model_draw_a_3_by_6_grid(gqa_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADCODE_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(conftest.SENTENCES) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    assert cli.main(["search", "--model", str(gqa_dir), "--corpus", str(corpus), "--run-dir", str(run),
                     "--max-programs", "40", "--workers", "1", "--seed", "3"]) == 0
    assert cli.main(["report", str(run)]) == 0
    html = (run / "report" / "index.html").read_text()
    grid = html.split('id="head-grid">', 1)[1].split("</div>\n<p", 1)[0]
    rows = grid.strip().split("\n")
    assert len(rows) == 3
    for layer, row in enumerate(rows):
        cells = re.findall(r'<a class="cell" href="#(L\d+\.H\d+)"', row)
        assert cells == [f"L{layer}.H{h}" for h in range(6)]
    assert "repeat(6," in html   # six columns, not four
    first = attention_set.AttentionSet.load(next((tmp_path / "cache" / "attention").iterdir())).tokens[0][0]
    assert first != "<s>"   # no BOS: the sink is the first word, and nothing above assumed otherwise
