"""The classic head detectors a reader knows from TransformerLens, as reference points beside the IoU.

Each is the mean attention a head puts where the classic pattern says, over the rows
where the pattern applies, on the run's own sentences (natural text, where TransformerLens
uses repeated random tokens for induction, so read them as reference points):

    previous-token   A[i, i-1]                                     rows i >= 1
    duplicate-token  sum of A[i, j] over earlier j with tokens[j] == tokens[i]
    induction        sum of A[i, j+1] over earlier j with tokens[j] == tokens[i], j+1 < i
"""

from __future__ import annotations

import numpy as np

NAMES = ("previous-token", "duplicate-token", "induction")


def masks(tokens: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Returns for each detector (where it looks (n, n), which rows it applies to (n,))."""
    n = len(tokens)
    prev = np.eye(n, k=-1)
    same = np.array([[1.0 if j < i and tokens[j] == tokens[i] else 0.0 for j in range(n)] for i in range(n)])
    ind = np.zeros((n, n))
    ind[:, 1:] = same[:, :-1]
    ind = np.tril(ind, k=-1)
    return [(m, m.sum(axis=1) > 0) for m in (prev, same, ind)]


class Scores:
    """Accumulates every head's detector scores sentence by sentence."""

    def __init__(self, n_heads: int):
        self.total = np.zeros((len(NAMES), n_heads))
        self.rows = np.zeros(len(NAMES))

    def add(self, tokens: list[str], matrices: np.ndarray) -> None:
        """Adds one sentence: matrices (K, n, n) of every head."""
        for d, (where, rows) in enumerate(masks(tokens)):
            if rows.any():
                self.total[d] += (matrices[:, rows, :] * where[rows][None]).sum(axis=(1, 2))
                self.rows[d] += rows.sum()

    def result(self) -> np.ndarray:
        """Returns (detectors, heads) mean scores; NaN where a pattern never applied."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.total / self.rows[:, None]
