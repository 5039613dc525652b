"""Program output normalisation and the row-wise soft IoU against every head at once.

Fidelity (the paper's metric): for attention A and program output P, both row-stochastic,
iou_row(i) = sum_j min(A_ij, P_ij) / sum_j max(A_ij, P_ij), averaged over rows, then over
sentences. Since sum(min) = sum(A) + sum(P) - sum(max), one elementwise maximum and one
row sum per head give every head's score.

`Targets` packs every head's attention into one float32 array (K, E): per sentence only
the entries that can carry mass (the lower triangle for causal models, all n*n
otherwise), row-major, so each matrix row is one contiguous segment. A program's output
is packed the same way into (E,) and scored against all heads in one pass.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

# Heads are scored in chunks whose float32 temporaries stay about this size (cache-friendly).
CHUNK_BYTES = 4 * 2**20


def normalise(raw: np.ndarray, n: int, causal: bool) -> np.ndarray:
    """Returns `raw` as a well-formed (n, n) float64 matrix: masked if causal, rows summing to 1 or 0.

    Raises ValueError with the exact problem ("NaN at row 4", "negative entry at (2, 0)",
    "wrong shape (3, 5) for 12 tokens"). A row with no mass stays all zero (it scores 0).
    """
    m = np.asarray(raw)
    if m.dtype == object or not (np.issubdtype(m.dtype, np.number) or m.dtype == bool):
        raise ValueError(f"output of dtype {m.dtype} is not numeric")
    if m.shape != (n, n):
        raise ValueError(f"wrong shape {tuple(m.shape)} for {n} tokens")
    m = m.astype(np.float64, copy=True)
    _check_finite_nonnegative(m)
    if causal:
        m = np.tril(m)
    with np.errstate(over="ignore"):
        sums = m.sum(axis=1, keepdims=True)  # (n, 1)
    if not np.all(np.isfinite(sums)):
        row = int(np.argmin(np.isfinite(sums[:, 0])))
        raise ValueError(f"row {row} sums to infinity")
    np.divide(m, sums, out=m, where=sums > 0)
    return m


def _check_finite_nonnegative(m: np.ndarray) -> None:
    """Raises ValueError naming the first NaN, infinite or negative entry of `m`."""
    for bad, what in ((np.isnan(m), "NaN"), (np.isinf(m), "infinite value")):
        if bad.any():
            row = int(np.argmax(bad.any(axis=1)))
            raise ValueError(f"{what} at row {row}")
    negative = m < 0
    if negative.any():
        i, j = np.argwhere(negative)[0]
        raise ValueError(f"negative entry at ({i}, {j})")


def iou_rows(a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Returns the soft IoU of each row of `a` against `p` (both (n, n)); empty rows score 0."""
    a = np.asarray(a, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if a.shape != p.shape or a.ndim != 2:
        raise ValueError(f"shapes {a.shape} and {p.shape} differ or are not 2-D")
    num = np.minimum(a, p).sum(axis=1)
    den = np.maximum(a, p).sum(axis=1)
    return np.divide(num, den, out=np.zeros_like(den), where=den > 0)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each sentence's rows and entries lie in the packed arrays."""
    lengths: tuple[int, ...]   # tokens per sentence
    causal: bool

    @property
    def n_rows(self) -> int:
        """Returns R, the total number of matrix rows over all sentences."""
        return sum(self.lengths)

    def row_widths(self) -> np.ndarray:
        """Returns the packed width of every row, (R,)."""
        if self.causal:
            return np.concatenate([np.arange(1, n + 1) for n in self.lengths])
        return np.repeat(np.asarray(self.lengths), self.lengths)

    def indices(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns the (rows, cols) of the packed entries of an (n, n) matrix, row-major."""
        return _indices(n, self.causal)


@functools.lru_cache(maxsize=1024)
def _indices(n: int, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Returns the row-major (rows, cols) of the lower triangle (causal) or of all entries."""
    rows, cols = np.tril_indices(n) if causal else np.indices((n, n)).reshape(2, -1)
    rows.setflags(write=False)
    cols.setflags(write=False)
    return rows, cols


class Targets:
    """All heads' attention packed for scoring programs against every head in one pass."""

    def __init__(self, packed: np.ndarray, layout: Layout, heads: list[tuple[int, int]] | None = None):
        if not layout.lengths or min(layout.lengths) < 1:
            raise ValueError("every sentence needs at least one token, and there must be one sentence")
        widths = layout.row_widths()
        assert packed.ndim == 2 and packed.shape[1] == int(widths.sum()), "packed size mismatch"
        self.packed = np.ascontiguousarray(packed, dtype=np.float32)   # (K, E)
        self.layout = layout
        self.heads = heads or [(0, k) for k in range(packed.shape[0])]
        self.row_starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.intp)  # (R,)
        self.sentence_rows = np.concatenate([[0], np.cumsum(layout.lengths)[:-1]]).astype(np.intp)  # (S,)
        self.row_sums = _segment_sums(self.packed, self.row_starts)   # (K, R)

    @property
    def n_heads_total(self) -> int:
        """Returns K, the number of heads scored."""
        return self.packed.shape[0]

    @property
    def n_sentences(self) -> int:
        """Returns S, the number of sentences."""
        return len(self.layout.lengths)

    @classmethod
    def from_matrices(cls, matrices: list[np.ndarray], causal: bool,
                      heads: list[tuple[int, int]] | None = None) -> "Targets":
        """Returns targets from one (K, n, n) array per sentence."""
        if not matrices:
            raise ValueError("no sentences to score against")
        layout = Layout(tuple(int(m.shape[-1]) for m in matrices), causal)
        packed = np.empty((matrices[0].shape[0], int(layout.row_widths().sum())), np.float32)
        start = 0
        for m in matrices:
            rows, cols = layout.indices(m.shape[-1])
            packed[:, start:start + rows.size] = m[:, rows, cols]
            start += rows.size
        return cls(packed, layout, heads)

    @classmethod
    def from_set(cls, aset, sentences: list[int] | None = None) -> "Targets":
        """Returns targets for every head of an AttentionSet (optionally a subset of its sentences).

        The whole set's packed array is memory-mapped from a file beside the set, so the
        processes of one machine share one copy.
        """
        chosen = range(len(aset)) if sentences is None else sentences
        layout = Layout(tuple(len(aset.tokens[i]) for i in chosen), bool(aset.causal))
        if not layout.lengths:
            raise ValueError(f"attention set {aset.path} has no sentences")
        shape = (len(aset.heads), int(layout.row_widths().sum()))
        fill = lambda out: cls._pack_into(out, aset, chosen, layout)  # noqa: E731
        if sentences is None:
            return cls(aset.derived("targets", shape, fill), layout, list(aset.heads))
        packed = np.empty(shape, np.float32)
        fill(packed)
        return cls(packed, layout, list(aset.heads))

    @staticmethod
    def _pack_into(out: np.ndarray, aset, chosen, layout: Layout) -> None:
        """Writes the chosen sentences' attention packed row-wise into `out`, (K, E) float32."""
        start = 0
        for i, n in zip(chosen, layout.lengths):
            m = aset.matrices(i)   # (K, n, n)
            assert m.shape[-1] == n, f"sentence {i}: {m.shape} for {n} tokens"
            rows, cols = layout.indices(n)
            out[:, start:start + rows.size] = m[:, rows, cols]
            start += rows.size

    def pack(self, matrices: list[np.ndarray]) -> np.ndarray:
        """Returns a program's normalised (n, n) outputs packed like the targets, (E,) float32."""
        if len(matrices) != self.n_sentences:
            raise ValueError(f"{len(matrices)} matrices for {self.n_sentences} sentences")
        parts = []
        for s, (m, n) in enumerate(zip(matrices, self.layout.lengths)):
            if m.shape != (n, n):
                raise ValueError(f"wrong shape {m.shape} for {n} tokens on sentence {s}")
            rows, cols = self.layout.indices(n)
            parts.append(m[rows, cols])
        return np.concatenate(parts).astype(np.float32)


def _segment_sums(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Returns the sums of `x` over the contiguous segments beginning at `starts`, along the last axis."""
    return np.add.reduceat(x, starts, axis=-1)


def iou_rows_packed(targets: Targets, packed: np.ndarray) -> np.ndarray:
    """Returns every row's IoU against every head, (K, R) float32, for one packed program output."""
    p_sums = _segment_sums(packed, targets.row_starts)               # (R,)
    out = np.empty((targets.n_heads_total, targets.layout.n_rows), np.float32)
    chunk = max(1, CHUNK_BYTES // max(1, packed.nbytes))
    for k0 in range(0, targets.n_heads_total, chunk):
        a = targets.packed[k0:k0 + chunk]                              # (k, E)
        union = _segment_sums(np.maximum(a, packed), targets.row_starts)   # (k, R)
        inter = targets.row_sums[k0:k0 + chunk] + p_sums - union       # (k, R)
        np.divide(inter, union, out=inter, where=union > 0)
        inter[union <= 0] = 0.0
        out[k0:k0 + chunk] = inter
    np.clip(out, 0.0, 1.0, out=out)
    return out


def iou_per_sentence(targets: Targets, matrices: list[np.ndarray]) -> np.ndarray:
    """Returns the mean row IoU of a program's normalised outputs per head and sentence, (K, S)."""
    rows = iou_rows_packed(targets, targets.pack(matrices))          # (K, R)
    sums = _segment_sums(rows, targets.sentence_rows)                  # (K, S)
    return sums / np.asarray(targets.layout.lengths, dtype=np.float32)


def iou(targets: Targets, matrices: list[np.ndarray]) -> np.ndarray:
    """Returns a program's IoU against every head, (K,): mean over rows, then over sentences."""
    return iou_per_sentence(targets, matrices).mean(axis=1).astype(np.float32)
