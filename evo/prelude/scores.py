"""Score terms: (n, n) matrices to add up, weighted, inside `softmax_rows` (they are not shares).

    softmax_rows(2.5 * sink_later(tokens) + 1.5 * steps_back(tokens, 1) + 0.8 * log_distance(tokens))

A term says what raises (positive weight) or lowers (negative weight) a key's score; the
softmax turns each row's scores into attention. docs/prelude.md lists each with its meaning.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["steps_back", "log_distance", "sink_later", "key_weight", "key_after", "query_weight"]


def steps_back(tokens: Sequence[str], d: int) -> np.ndarray:
    """Returns (n, n): 1 where key j is exactly d tokens before query i (d=0: itself; d<0: -d tokens after)."""
    n = len(tokens)
    return np.eye(n, k=-int(d)) if abs(int(d)) < max(n, 1) else np.zeros((n, n))


def log_distance(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): -log(1 + |i - j|), 0 on the token itself, falling slowly with distance."""
    pos = np.arange(len(tokens))
    return -np.log1p(np.abs(pos[:, None] - pos[None, :]))


def sink_later(tokens: Sequence[str]) -> np.ndarray:
    """Returns (n, n): log(1 + i) in column 0: a pull to the first token that grows along the sentence.

    A softmax shares a fixed score among more keys as the sentence goes on; this term keeps the
    first token's share steady instead of fading.
    """
    n = len(tokens)
    out = np.zeros((n, n))
    if n:
        out[:, 0] = np.log1p(np.arange(n))
    return out


def key_weight(tokens: Sequence[str], weights: dict) -> np.ndarray:
    """Returns (n, n): in column j, `weights[tokens[j]]` (0 for a token not listed): a score per key token.

    What a head favours or avoids by the key's own token, e.g. `key_weight(tokens, {" the": 1.2, ",": -0.8})`.
    """
    n = len(tokens)
    column = np.array([float(weights.get(t, 0.0)) for t in tokens], dtype=np.float64)
    return np.broadcast_to(column, (n, n)).copy()


def key_after(tokens: Sequence[str], weights: dict) -> np.ndarray:
    """Returns (n, n): in column j, `weights[tokens[j - 1]]` (0 for the first token and tokens not listed).

    What a head favours by the token just before the key, e.g. the word after " the":
    `key_after(tokens, {" the": 1.1, ",": 0.6})`.
    """
    n = len(tokens)
    column = np.array([0.0] + [float(weights.get(t, 0.0)) for t in tokens[:-1]], dtype=np.float64)[:n]
    return np.broadcast_to(column, (n, n)).copy()


def query_weight(tokens: Sequence[str], weights: dict) -> np.ndarray:
    """Returns (n, n): in row i, `weights[tokens[i]]` (0 for a token not listed): a score per query token.

    Alone it changes no softmax (a row's scores all move together); times a pattern it says which
    queries lean on that pattern: `query_weight(tokens, {",": 1.5, " the": -0.7}) * sink(tokens)`.
    """
    n = len(tokens)
    row = np.array([float(weights.get(t, 0.0)) for t in tokens], dtype=np.float64)
    return np.broadcast_to(row[:, None], (n, n)).copy()
