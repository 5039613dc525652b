"""A head's affinity with each token read beside the few tokens before it: how much context a head needs.

    reading(t)  =  start + ids[t - c .. t]     the token beside the c tokens before it (its sentence's own
                                               prefix, exactly, where that is no longer)
    q(t), k(t)  <- the model over reading(t), at its last position p(t)
    affinity_in_context[i, j]  =  q(i) . k(j) * scaling, the query turned so that the pair stands i - j
                                  apart (a rotary model's: by (i - p(i)) - (j - p(j)))

With c = 0 this is `affinity_at_distance` (each token read alone); as c grows it nears the head's own
scores, which it equals wherever c reaches back to the sentence's start. A head explained by c = 1
reads each token beside the one before it (a previous-token head's output, an induction head's key);
one that needs more context than `MAX` is not explained by this term. A search grows a head's c one
step at a time and keeps a step only where the head's table improves (operators.fitting.scored_edits).
"""

from __future__ import annotations

import numpy as np

MAX = 3   # the most tokens a reading stands beside (gemma-3-270m, 17 heads: table IoU 0.765 alone, 0.797 at 1,
          # 0.821 at 2; more context moves the term toward the head's own scores, and explains less)


def readings(ids: list[int], context: int, start: list[int]) -> list[tuple[int, ...]]:
    """Returns the ids each token of a sentence (`ids`, its start tokens first where the model has them) is read
    beside: the token and up to `context` tokens before it, after the model's start tokens (ids as given: a
    token id, or a tuple of one token's pieces)."""
    first = len(start) if list(ids[:len(start)]) == list(start) else 0
    out = []
    for t in range(len(ids)):
        if t - context <= first:   # the window reaches the sentence's start: its own prefix
            out.append(tuple(ids[:t + 1]))
        else:
            out.append(tuple(start) + tuple(ids[t - context:t + 1]))
    return out


def gaps(read: list[tuple[int, ...]]) -> np.ndarray:
    """Returns (n, n): how far each query must be turned against each key so that the pair stands its
    sentence distance apart, given that each was read at the last position of its reading."""
    offset = np.arange(len(read)) - np.array([len(r) - 1 for r in read])   # t - p(t)
    return np.subtract.outer(offset, offset)
