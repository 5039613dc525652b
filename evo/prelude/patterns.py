"""Whole attention patterns a program can mix, and the row normalisers that make them shares.

Written without the causal mask: `causal_rows` (and the evaluator) apply it, so one
pattern serves decoders and encoders alike. A mix reads as shares of each row's attention:

    0.84 * causal_rows(sink(tokens)) + 0.16 * causal_rows(decay(tokens) ** 0.5)

Raising a graded pattern to a power before normalising sharpens it: `decay(tokens) ** 2`
fades by 0.25 per step. docs/prelude.md lists each with its meaning.
"""

from __future__ import annotations

import numpy as np

from evo.prelude.tokens import (band, columns, is_capitalized, is_delimiter, is_digit, is_punct, is_special,
                                is_word_start, most_recent, one_hot, previous_occurrence, same_token,
                                word_ends, word_index, word_start)
# Written without the causal mask: `causal_rows` (and the evaluator) apply it, so one
# pattern serves decoders and encoders alike. Mix them as shares of each row's attention:
#     0.84 * causal_rows(sink(tokens)) + 0.16 * causal_rows(decay(tokens) ** 0.5)

def rows(a) -> np.ndarray:
    """Returns `a` with each row scaled to sum to 1 (rows with no mass stay 0)."""
    a = np.asarray(a, dtype=float)
    s = a.sum(axis=1, keepdims=True)
    return np.divide(a, s, out=np.zeros_like(a), where=s > 0)


def causal_rows(a) -> np.ndarray:
    """Returns `a` causally masked (j <= i), then with each row scaled to sum to 1."""
    return rows(np.tril(np.asarray(a, dtype=float)))


def softmax_rows(scores) -> np.ndarray:
    """Returns attention from additive scores (n, n): each row's softmax (-inf scores get nothing).

    Build the scores from readable terms, e.g. `2.1 * head_matrix(tokens) + 1.4 * pos_pair(tokens,
    "NOUN", "DET")`; the evaluator's causal mask then keeps the softmax over the visible keys.
    """
    s = np.asarray(scores, dtype=float)
    top = np.max(s, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(s - top)
    return rows(np.where(np.isfinite(e), e, 0.0))


def _sink_rows(n: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    a = np.zeros((n, n))
    a[start:stop, 0] = 1.0
    return a


def _back(n: int) -> np.ndarray:
    pos = np.arange(n)
    return np.abs(pos[:, None] - pos[None, :])   # (n, n) distance |i - j|


def sink(tokens) -> np.ndarray:
    """Every token attends to the first token."""
    return _sink_rows(len(tokens))


def early_sink(tokens) -> np.ndarray:
    """The first 3 tokens attend to the first token, the rest to nothing."""
    return _sink_rows(len(tokens), 0, 3)


def start_sink(tokens) -> np.ndarray:
    """The first 6 tokens attend to the first token, the rest to nothing."""
    return _sink_rows(len(tokens), 0, 6)


def opening_sink(tokens) -> np.ndarray:
    """The first 12 tokens attend to the first token, the rest to nothing."""
    return _sink_rows(len(tokens), 0, 12)


def late_sink(tokens) -> np.ndarray:
    """Tokens after the first 24 attend to the first token, the rest to nothing."""
    return _sink_rows(len(tokens), 24)


def fading_sink(tokens) -> np.ndarray:
    """The first token, plus a quarter as much on every token seen: its share at position i is 5 / (5 + i)."""
    return np.ones((len(tokens), len(tokens))) / 4 + sink(tokens)


def slow_fading_sink(tokens) -> np.ndarray:
    """The first token, plus a sixteenth as much on every token seen: its share at i is 17 / (17 + i)."""
    return np.ones((len(tokens), len(tokens))) / 16 + sink(tokens)


def decay_sink(tokens) -> np.ndarray:
    """The first token, plus a quarter as much on recent tokens fading by 0.9 per step."""
    return 0.9 ** _back(len(tokens)) / 4 + sink(tokens)


def previous_token(tokens) -> np.ndarray:
    """Every token attends to the one before it (the first to itself)."""
    a = np.eye(len(tokens), k=-1)
    a[0, 0] = 1.0
    return a


def next_token(tokens) -> np.ndarray:
    """Every token attends to the one after it (the last to itself)."""
    a = np.eye(len(tokens), k=1)
    a[-1, -1] = 1.0
    return a


def self_token(tokens) -> np.ndarray:
    """Every token attends to itself."""
    return np.eye(len(tokens))


def uniform(tokens) -> np.ndarray:
    """Every token attends equally to every token it can see."""
    return np.ones((len(tokens), len(tokens)))


def two_back(tokens) -> np.ndarray:
    """Every token attends to the token two before it."""
    return np.eye(len(tokens), k=-2)


def three_back(tokens) -> np.ndarray:
    """Every token attends to the token three before it."""
    return np.eye(len(tokens), k=-3)


def decay(tokens) -> np.ndarray:
    """Attention halves with each step away."""
    return 0.5 ** _back(len(tokens))


def slow_decay(tokens) -> np.ndarray:
    """Attention fades by 0.9 with each step away."""
    return 0.9 ** _back(len(tokens))


def window(tokens) -> np.ndarray:
    """Every token attends to itself and the two tokens before it."""
    return band(len(tokens), 2)


def previous_copy(tokens) -> np.ndarray:
    """Every token attends to the last earlier copy of itself."""
    return one_hot(len(tokens), [previous_occurrence(tokens, i) for i in range(len(tokens))])


def induction(tokens) -> np.ndarray:
    """Every token attends to what followed earlier copies of the previous token."""
    n = len(tokens)
    a = np.zeros((n, n))
    for i in range(1, n):
        for j in range(1, i):
            if tokens[j - 1] == tokens[i - 1]:
                a[i, j] = 1.0
    return a


def punctuation(tokens) -> np.ndarray:
    """Every token attends to the punctuation marks."""
    return columns(tokens, is_punct)


def delimiters(tokens) -> np.ndarray:
    """Every token attends to the delimiters."""
    return columns(tokens, is_delimiter)


def last_delimiter(tokens) -> np.ndarray:
    """Every token attends to the most recent delimiter."""
    return one_hot(len(tokens), most_recent(tokens, is_delimiter))


def capitals(tokens) -> np.ndarray:
    """Every token attends to the capitalised tokens."""
    return columns(tokens, is_capitalized)


def word_openings(tokens) -> np.ndarray:
    """Every token attends to the tokens that start a word."""
    return columns(tokens, is_word_start)


def word_endings(tokens) -> np.ndarray:
    """Every token attends to the tokens that close a word (a word's last piece; a one-piece word's only one)."""
    return np.tile(np.array(word_ends(tokens), dtype=float), (len(tokens), 1))


def word_head(tokens) -> np.ndarray:
    """Every token attends to the first token of its own word."""
    return one_hot(len(tokens), word_start(tokens))


def same_word(tokens) -> np.ndarray:
    """Every token attends to the tokens of its own word."""
    w = np.array(word_index(tokens))
    return 1.0 * (w[:, None] == w[None, :])


def previous_word(tokens) -> np.ndarray:
    """Every token attends to the first token of the previous word."""
    heads = word_start(tokens)
    return one_hot(len(tokens), [heads[heads[i] - 1] if heads[i] > 0 else None for i in range(len(tokens))])


def digits(tokens) -> np.ndarray:
    """Every token attends to the digits."""
    return columns(tokens, is_digit)


def special_tokens(tokens) -> np.ndarray:
    """Every token attends to the special tokens."""
    return columns(tokens, is_special)


PATTERNS = ("sink", "early_sink", "start_sink", "opening_sink", "late_sink", "fading_sink", "slow_fading_sink",
            "decay_sink", "previous_token", "next_token", "self_token", "uniform", "two_back", "three_back",
            "decay", "slow_decay", "window", "same_token", "previous_copy", "induction", "punctuation",
            "delimiters", "last_delimiter", "capitals", "word_openings", "word_endings", "word_head", "same_word",
            "previous_word", "digits", "special_tokens")
__all__ = ["rows", "causal_rows", "softmax_rows", *[p for p in PATTERNS if p != "same_token"]]
