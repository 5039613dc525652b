"""Readable token rendering across byte-level BPE, SentencePiece-style BPE and WordPiece."""

import pytest

from evo import tokens
from tests import conftest


@pytest.fixture(scope="module")
def toks():
    return {"byte_level": conftest._byte_level_tokenizer(), "sentencepiece": conftest._sentencepiece_tokenizer(),
            "wordpiece": conftest._wordpiece_tokenizer()}


def _render(tokenizer, text):
    return tokens.render(tokenizer, tokenizer(text)["input_ids"])


@pytest.mark.parametrize("kind", ["byte_level", "sentencepiece", "wordpiece"])
def test_family_is_detected(kind, toks):
    assert tokens.family(toks[kind]) == kind


def test_byte_level_maps_g_dot_to_space_and_newline_to_itself(toks):
    out = _render(toks["byte_level"], "The cat\nsat on the mat.")
    assert "".join(out) == "The cat\nsat on the mat."
    assert " c" in out and "\n" in out
    assert not any("Ġ" in t or "Ċ" in t for t in out)


def test_sentencepiece_keeps_bos_and_maps_metaspace(toks):
    out = _render(toks["sentencepiece"], "The cat sat\ton the mat.")
    assert out[0] == "<s>"
    assert "".join(out[1:]) == " The cat sat\ton the mat."  # the tokenizer prepends "▁" to the first word
    assert not any("▁" in t for t in out)


def test_byte_fallback_tokens_become_characters(toks):
    out = _render(toks["sentencepiece"], "é\nx")
    assert "\n" in out and not any(t.startswith("<0x") for t in out)
    assert "".join(out[1:]) == " é\nx"
    assert "" in out  # the first byte of "é" renders empty; the second carries the character


def test_split_multibyte_character_lands_on_completing_token(toks):
    out = _render(toks["byte_level"], "é")
    assert out == ["", "é"]


def test_incomplete_character_at_the_end_is_marked(toks):
    tok = toks["byte_level"]
    first_byte = tok("é")["input_ids"][:1]
    assert tokens.render(tok, first_byte) == ["\ufffd"]


def test_wordpiece_glues_continuations_and_spaces_words(toks):
    out = _render(toks["wordpiece"], "Hello world, the cat.")
    assert out[0] == "[CLS]" and out[-1] == "[SEP]"
    assert "".join(out[1:-1]) == "hello world, the cat."
    assert not any(t.startswith("##") for t in out)


def test_one_string_per_id(toks):
    for tok in toks.values():
        ids = tok("A b, c: 12 (d)!")["input_ids"]
        assert len(tokens.render(tok, ids)) == len(ids)
