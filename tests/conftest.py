"""Shared fixtures: tiny random models with offline tokenizers, and a small synthetic attention set.

Tokenizers are trained in code with the `tokenizers` library (no network): a GPT-2-style
byte-level BPE, a SentencePiece-style BPE ("▁", byte fallback, <s> prepended) and a
BERT-style WordPiece ([CLS] ... [SEP]). Models are built from configs with eager attention
and sharpened initial weights (so attention is far from uniform), saved with
`save_pretrained` and loadable by path through `evo.models.load`.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

TRAINING_TEXT = (
    "The cat sat on the mat, and the dog sat on the log.",
    "In 1999, Alice met Bob in Paris; they talked for 3 hours.",
    "\"Stop!\" she said. \"Why?\" he asked (quietly).",
    "def add(a, b): return a + b  # adds two numbers",
    "Step 1: open the box. Step 2: take out the key. Step 3: open the door.",
    "Apples, pears, plums and cherries were on sale for $4.50 a pound.",
    "The report was published on 12 March 2021 by the World Health Organization.",
    "She read the book, then she read the book again, and again.",
    "Is it raining? No, it is sunny and warm today.",
    "Numbers: 1, 2, 3, 5, 8, 13, 21, 34.",
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time there was a small village near a great river.",
)

SENTENCES = (
    "The cat sat on the mat.",
    "Alice met Bob in Paris, and Bob met Alice in Rome.",
    "Step 1: open the box.",
    "\"Why?\" he asked (quietly).",
    "Numbers: 1, 2, 3, 5, 8.",
    "The quick brown fox jumps over the lazy dog, then the quick brown fox sleeps.",
)


def _byte_level_tokenizer():
    """Returns a GPT-2-style byte-level BPE tokenizer (no BOS added)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TRAINING_TEXT, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>")


def _sentencepiece_tokenizer():
    """Returns a SentencePiece-style BPE tokenizer ("▁", <0xNN> byte fallback, <s> prepended)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>"])
    tok.train_from_iterator(TRAINING_TEXT, trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    data["model"]["byte_fallback"] = True
    tok = Tokenizer.from_str(json.dumps(data))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>")


def _wordpiece_tokenizer():
    """Returns a BERT-style lowercasing WordPiece tokenizer ([CLS] ... [SEP])."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(TRAINING_TEXT, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def _build_model(family: str, vocab_size: int):
    """Returns a small random model of the family with eager attention and sharp attention."""
    import torch
    import transformers as T

    torch.manual_seed({"gpt2": 1, "llama": 2, "gemma3": 3, "bert": 4}[family])
    common = dict(vocab_size=vocab_size, attn_implementation="eager", initializer_range=0.3)
    if family == "gpt2":
        return T.GPT2LMHeadModel(T.GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=128,
                                              bos_token_id=0, eos_token_id=0, **common))
    if family == "llama":
        return T.LlamaForCausalLM(T.LlamaConfig(
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=32,
            intermediate_size=64, max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
            pad_token_id=3, **common))
    if family == "gemma3":
        return T.Gemma3ForCausalLM(T.Gemma3TextConfig(
            num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1, hidden_size=32, head_dim=8,
            intermediate_size=64, max_position_embeddings=128, sliding_window=4,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            bos_token_id=1, eos_token_id=2, pad_token_id=3, **common))
    assert family == "bert", family
    return T.BertModel(T.BertConfig(num_hidden_layers=2, num_attention_heads=4, hidden_size=32,
                                    intermediate_size=64, max_position_embeddings=128, pad_token_id=0,
                                    **common))


_TOKENIZER_FOR = {"gpt2": _byte_level_tokenizer, "llama": _sentencepiece_tokenizer,
                  "gemma3": _sentencepiece_tokenizer, "bert": _wordpiece_tokenizer}


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> dict[str, pathlib.Path]:
    """Returns {"gpt2", "llama", "gemma3", "bert"} -> a saved tiny random model directory with tokenizer."""
    root = tmp_path_factory.mktemp("tiny-models")
    dirs = {}
    for family, make_tokenizer in _TOKENIZER_FOR.items():
        tokenizer = make_tokenizer()
        model = _build_model(family, len(tokenizer))
        path = root / family
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        dirs[family] = path
    return dirs


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tiny_model_dirs) -> pathlib.Path:
    """Returns the directory of a tiny random GPT-2 (2 layers x 4 heads, byte-level BPE)."""
    return tiny_model_dirs["gpt2"]


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_model_dirs) -> pathlib.Path:
    """Returns the directory of a tiny random Llama with GQA (2 layers x 4 query heads, 2 kv heads)."""
    return tiny_model_dirs["llama"]


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tiny_model_dirs) -> pathlib.Path:
    """Returns the directory of a tiny random Gemma 3 (3 layers x 4 heads, sliding window 4)."""
    return tiny_model_dirs["gemma3"]


@pytest.fixture(scope="session")
def tiny_bert_dir(tiny_model_dirs) -> pathlib.Path:
    """Returns the directory of a tiny random BERT encoder (2 layers x 4 heads, WordPiece)."""
    return tiny_model_dirs["bert"]


@pytest.fixture
def tiny_corpus():
    """Returns an evo.corpus.Corpus of six short varied sentences."""
    from evo import corpus

    return corpus.Corpus(sentences=SENTENCES, source="tests:tiny", fingerprint=corpus.fingerprint(SENTENCES))


def _synthetic_heads(n: int) -> np.ndarray:
    """Returns (4, n, n) causal heads: previous token, first token, self, uniform causal."""
    prev = np.eye(n, k=-1)
    prev[0, 0] = 1.0
    first = np.zeros((n, n))
    first[:, 0] = 1.0
    uniform = np.tril(np.ones((n, n)))
    uniform /= uniform.sum(axis=1, keepdims=True)
    return np.stack([prev, first, np.eye(n), uniform])


SYNTHETIC_TOKENS = (
    ["<bos>", "The", " cat", " sat", "."],
    ["<bos>", "A", " dog", ",", " a", " cat", "."],
    ["<bos>", "Hi"],
)


def make_tiny_attention_set(folder: pathlib.Path):
    """Returns an AttentionSet (causal, 2 layers x 2 heads, 3 sentences) with known heads.

    Head k=0 (layer 0, head 0) attends to the previous token (row 0 to itself), k=1 to the
    first token, k=2 to itself, k=3 uniformly over the causal prefix.
    """
    from evo import attention_set

    meta = {"model": "synthetic", "causal": True, "n_layers": 2, "n_heads": 2,
            "corpus": {"source": "tests:synthetic", "fingerprint": "0" * 16},
            "max_tokens": 64, "dtype": "float32",
            "tokens": [list(t) for t in SYNTHETIC_TOKENS],
            "sentences": ["".join(t[1:]) for t in SYNTHETIC_TOKENS]}
    matrices = [_synthetic_heads(len(t)) for t in SYNTHETIC_TOKENS]
    return attention_set.write(folder / "synthetic-set", meta, matrices)


@pytest.fixture
def tiny_attention_set(tmp_path):
    """Returns the tiny synthetic attention set (see make_tiny_attention_set)."""
    return make_tiny_attention_set(tmp_path)


def make_cli_run(aset_path, run_dir: pathlib.Path) -> pathlib.Path:
    """Returns a finished 40-program search on the attention set, exported to run/out."""
    from evo.cli import main
    assert main(["search", "--attention-set", str(aset_path), "--run-dir", str(run_dir),
                 "--max-programs", "40", "--workers", "1", "--seed", "5"]) == 0
    assert main(["export", str(run_dir), "--out", str(run_dir / "out")]) == 0
    return run_dir


@pytest.fixture
def cli_run(tiny_attention_set, tmp_path):
    """Returns a finished 40-program search on the tiny attention set, exported to run/out."""
    return make_cli_run(tiny_attention_set.path, tmp_path / "r")
