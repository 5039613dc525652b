"""Helpers that attention programs may call: token predicates, positions, and matrices.

(This is `evo.prelude`'s token half; `evo.prelude.patterns` holds whole attention patterns.)
Every name in `__all__` is pre-injected into a program's globals by the sandbox, so a
program can call `is_punct(t)` with no import; `from evo.prelude import is_punct` also
works (and makes the file runnable outside the sandbox). Everything here is pure: the
same tokens give the same result, nothing is read or written. docs/prelude.md documents
each helper for users and for LLM prompts.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "strip", "is_special", "is_punct", "is_delimiter", "is_digit", "is_capitalized",
    "is_word_start", "word_starts", "word_ends", "word_index", "word_start", "first_occurrence",
    "previous_occurrence", "most_recent", "same_token", "columns", "one_hot",
    "causal_uniform", "band",
]

# "<bos>", "</s>", "<|endoftext|>", "<start_of_turn>", "[CLS]", "[SEP]", "<0x0A>" ...
_SPECIAL = re.compile(r"^(<\|[^|\s]+\|>|</?[A-Za-z0-9_:.\-]+>|\[[A-Z_]+\])$")
_DELIMITERS = frozenset(".,;:!?…—–-()[]{}\"'")


def strip(tok: str) -> str:
    """Returns the token without its surrounding whitespace (" world" -> "world")."""
    return tok.strip()


def is_special(tok: str) -> bool:
    """Returns whether the token is a special token such as "<bos>", "</s>" or "[CLS]"."""
    return bool(_SPECIAL.match(tok))


def is_punct(tok: str) -> bool:
    """Returns whether the token is punctuation only (",", " ...", "?!"), ignoring spaces."""
    s = tok.strip()
    return bool(s) and not is_special(tok) and all(
        unicodedata.category(c).startswith("P") for c in s)


def is_delimiter(tok: str) -> bool:
    """Returns whether the token separates clauses: . , ; : ! ? dashes, brackets, quotes, newline."""
    s = tok.strip()
    return "\n" in tok or (bool(s) and all(c in _DELIMITERS for c in s))


def is_digit(tok: str) -> bool:
    """Returns whether the token is made of digits only (" 42" -> True)."""
    return tok.strip().isdigit()


def is_capitalized(tok: str) -> bool:
    """Returns whether the token's first non-space character is an upper-case letter."""
    return tok.strip()[:1].isupper()


def is_word_start(tok: str) -> bool:
    """Returns whether the token opens a word: leading whitespace, punctuation or special.

    The first token of a sentence also opens a word; `word_starts` accounts for it.
    """
    return tok[:1].isspace() or is_punct(tok) or is_special(tok)


def word_starts(tokens: Sequence[str]) -> list[bool]:
    """Returns, per token, whether it opens a word (the first token always does)."""
    return [i == 0 or is_word_start(t) or _follows_break(tokens, i)
            for i, t in enumerate(tokens)]


def _follows_break(tokens: Sequence[str], i: int) -> bool:
    """Returns whether tokens[i-1] is punctuation or special, so tokens[i] opens a word."""
    return i > 0 and (is_punct(tokens[i - 1]) or is_special(tokens[i - 1]))


def word_ends(tokens: Sequence[str]) -> list[bool]:
    """Returns, per token, whether it closes a word: the next token opens one (the last token always closes)."""
    starts = word_starts(tokens)
    return [i + 1 == len(tokens) or starts[i + 1] for i in range(len(tokens))]


def word_index(tokens: Sequence[str]) -> list[int]:
    """Returns, per token, the number of the word it belongs to (0, 0, 1, 2, 2, ...)."""
    out, w = [], -1
    for start in word_starts(tokens):
        w += start
        out.append(w)
    return out


def word_start(tokens: Sequence[str]) -> list[int]:
    """Returns, per token, the position of the first token of its word."""
    out, first = [], 0
    for i, start in enumerate(word_starts(tokens)):
        first = i if start else first
        out.append(first)
    return out


def first_occurrence(tokens: Sequence[str]) -> dict[str, int]:
    """Returns a dict from each distinct token to the position where it first appears."""
    out: dict[str, int] = {}
    for i, t in enumerate(tokens):
        out.setdefault(t, i)
    return out


def previous_occurrence(tokens: Sequence[str], i: int) -> int | None:
    """Returns the largest j < i with tokens[j] == tokens[i], or None when there is none."""
    for j in range(i - 1, -1, -1):
        if tokens[j] == tokens[i]:
            return j
    return None


def most_recent(tokens: Sequence[str], pred: Callable[[str], bool],
                include_self: bool = True) -> list[int | None]:
    """Returns, per position i, the largest j <= i (j < i if not include_self) with pred(tokens[j]), or None."""
    out: list[int | None] = []
    last = None
    for i, t in enumerate(tokens):
        before = last
        if pred(t):
            last = i
        out.append(last if include_self else before)
    return out


def same_token(tokens: Sequence[str]) -> np.ndarray:
    """Returns the (n, n) float matrix with 1 where tokens[i] == tokens[j], else 0."""
    ids = np.array([first_occurrence(tokens)[t] for t in tokens], dtype=np.int64)
    return (ids[:, None] == ids[None, :]).astype(np.float64)


def columns(tokens: Sequence[str], pred: Callable[[str], bool]) -> np.ndarray:
    """Returns the (n, n) matrix whose every row is 1 at the columns j where pred(tokens[j])."""
    n = len(tokens)
    mask = np.array([bool(pred(t)) for t in tokens], dtype=np.float64)
    return np.broadcast_to(mask, (n, n)).copy()


def one_hot(n: int, cols: Sequence[int | None]) -> np.ndarray:
    """Returns the (n, n) matrix with row i all 0 except 1 at column cols[i] (a None or out-of-range entry leaves the row empty)."""
    a = np.zeros((n, n))
    for i, j in enumerate(cols[:n]):
        if j is not None and 0 <= j < n:
            a[i, j] = 1.0
    return a


def causal_uniform(n: int) -> np.ndarray:
    """Returns the (n, n) matrix where row i spreads its weight evenly over positions 0..i."""
    return np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]


def band(n: int, before: int, after: int = 0) -> np.ndarray:
    """Returns the (n, n) 0/1 matrix with 1 where i - before <= j <= i + after (a local window)."""
    d = np.arange(n)[None, :] - np.arange(n)[:, None]   # (n, n) j - i
    return ((d >= -before) & (d <= after)).astype(np.float64)

