"""Readable rendering of a model's tokens, the `tokens` a program receives.

Rules, whatever the tokenizer family:
- special tokens are kept as their text ("<bos>", "[CLS]", "<|endoftext|>");
- a leading space is kept as " " (SentencePiece "▁" and byte-level "Ġ" become " ");
- newlines, tabs and other characters are the characters themselves ("\\n", not "Ċ" or "<0x0A>");
- a character split over several byte tokens appears on the token that completes it, the
  earlier tokens rendering as "" (an incomplete character at the end renders as "\\ufffd");
- WordPiece (BERT) tokens carry no spacing, so "##" continuations are glued (prefix dropped)
  and any other token after the first word gets " " unless it is a single punctuation
  character, mirroring the tokenizer's own decoding.
"""

from __future__ import annotations

import codecs
import functools
import re
import unicodedata
import weakref

_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Returns GPT-2's byte-level character -> byte map (the inverse of bytes_to_unicode)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def family(tokenizer) -> str:
    """Returns "byte_level", "wordpiece" or "sentencepiece" for a tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        if type(backend.model).__name__ == "WordPiece":
            return "wordpiece"
        if "ByteLevel" in repr(backend.pre_tokenizer) + repr(backend.decoder):
            return "byte_level"
        return "sentencepiece"
    vocab = tokenizer.get_vocab()
    if any(piece.startswith("##") for piece in vocab):
        return "wordpiece"
    return "byte_level" if "Ġ" in "".join(list(vocab)[:2000]) else "sentencepiece"


_PROFILES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _profile(tokenizer) -> tuple[str, frozenset[int]]:
    """Returns (family, special token ids) for a tokenizer, computed once per tokenizer object."""
    cached = _PROFILES.get(tokenizer)
    if cached is None:
        ids = set(tokenizer.all_special_ids)
        decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        ids.update(i for i, added in decoder.items() if getattr(added, "special", False))
        cached = (family(tokenizer), frozenset(ids))
        _PROFILES[tokenizer] = cached
    return cached


def _piece_bytes(piece: str, kind: str) -> bytes:
    """Returns the bytes of text one ordinary (non-special) token stands for."""
    if kind == "byte_level":
        table = _byte_decoder()
        if all(ch in table for ch in piece):
            return bytes(table[ch] for ch in piece)
        return piece.encode("utf-8")
    match = _BYTE_TOKEN.fullmatch(piece)
    if match:
        return bytes([int(match.group(1), 16)])
    return piece.replace("▁", " ").encode("utf-8")


def _is_punct(text: str) -> bool:
    return len(text) == 1 and unicodedata.category(text).startswith("P")


def _wordpiece(pieces: list[str], special: list[bool]) -> list[str]:
    """Returns WordPiece tokens with "##" glued and word starts given a leading " "."""
    out, seen_word = [], False
    for piece, is_special in zip(pieces, special):
        if is_special:
            out.append(piece)
        elif piece.startswith("##") and len(piece) > 2:
            out.append(piece[2:])
        else:
            out.append(" " + piece if seen_word and not _is_punct(piece) else piece)
            seen_word = True
    return out


def render(tokenizer, ids: list[int]) -> list[str]:
    """Returns the readable text of each token id, one string per id (same length as ids)."""
    ids = [int(i) for i in ids]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    kind, specials = _profile(tokenizer)
    special = [i in specials for i in ids]
    if kind == "wordpiece":
        return _wordpiece(pieces, special)
    out: list[str] = []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for piece, is_special in zip(pieces, special):
        if is_special:
            _flush_into(out, decoder)
            out.append(piece)
        else:
            out.append(decoder.decode(_piece_bytes(piece, kind)))
    _flush_into(out, decoder)
    return out


def _flush_into(out: list[str], decoder) -> None:
    """Appends any dangling partial character (as U+FFFD) to the last rendered token."""
    tail = decoder.decode(b"", final=True)
    if tail and out:
        out[-1] += tail
    decoder.reset()
