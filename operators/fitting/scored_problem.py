"""The packed sample a scored program is fitted on (operators.fitting.scored): every score term's value at
every valid (query row, key) entry, and the softmax, IoU and gradients over those entries.

Term t < K is key term t for every query; t = K + c * K + k is key term k for the queries of class c
only (`score_terms.conditioned`). A row's scores are its own weights over the key terms (shared plus
its class's), so conditioned terms cost no more memory than the key terms themselves. Only valid
entries are kept (`values`, (E, K)), a row's entries side by side and rows grouped by their query's
class: a class's scores are one matrix-vector product, a row's softmax one segment of a reduction,
and keys the causal mask or the padding hide cost nothing.

Fits work on flat (E,) vectors (`flat` packs a head's (R, N) target rows); `attention` and `iou`
take and give (R, N) rows for callers that score a fit on other sentences.
"""

from __future__ import annotations

import ast
import copy
import functools

import numpy as np

from evo import prelude
from operators.shared import score_terms
from operators.shared.score_terms import Feature


class Problem:
    """Score terms on a fit sample: values (E, K), each row's query class, valid keys, row weights."""

    def __init__(self, sample, feats: list[Feature], causal: bool, queries: tuple[str, ...] = ()):
        self.keys, self.queries = list(feats), tuple(queries)
        self.feats = self.keys + [score_terms.conditioned(q, f) for q in self.queries for f in self.keys]
        dense = np.stack([sample.pack([score_terms.values(f, list(t)) for t in sample.tokens]) for f in feats])
        self.row_class = np.concatenate([_classes(list(t), self.queries) for t in sample.tokens])  # (R,), C: none
        self.row_weight = sample.row_weight
        valid = np.zeros(dense.shape[1:], dtype=bool)  # (R, N)
        r = 0
        for n in sample.lengths:
            valid[r:r + n, :n] = np.tril(np.ones((n, n), dtype=bool)) if causal else True
            r += n
        self.valid = valid
        order = np.argsort(self.row_class, kind="stable")          # rows grouped by class
        rows, keys = np.nonzero(valid[order])
        self.entry_row = order[rows]                               # (E,) each valid entry's row ...
        self.entry = self.entry_row * valid.shape[1] + keys        # ... and its place in a flat (R, N)
        self.values = np.ascontiguousarray(dense[:, self.entry_row, keys].T, dtype=np.float32)  # (E, K)
        self.bounds = np.searchsorted(self.row_class[self.entry_row], np.arange(len(self.queries) + 2))
        self.starts = np.flatnonzero(np.r_[True, self.entry_row[1:] != self.entry_row[:-1]])  # each row's first
        self.segment = np.cumsum(np.r_[0, np.diff(self.entry_row) != 0])   # (E,) its row's number in that order
        self.segment_weight = self.row_weight[order]                       # row weights in that order

    def extended(self, sample, extra: list[Feature]) -> "Problem":
        """Returns this problem with more key terms on the same sample (each also per query class),
        sharing everything that does not change."""
        out = copy.copy(self)
        for cached in ("scale", "by_expr"):
            out.__dict__.pop(cached, None)
        out.keys = self.keys + list(extra)
        out.feats = out.keys + [score_terms.conditioned(q, f) for q in self.queries for f in out.keys]
        out.values = np.ascontiguousarray(np.hstack([self.values, self.columns(sample, extra)]))
        return out

    def columns(self, sample, extra: list[Feature]) -> np.ndarray:
        """Returns more key terms' values at this problem's valid entries (E, m), float32 like `values`."""
        dense = np.stack([sample.pack([score_terms.values(f, list(t)) for t in sample.tokens]) for f in extra])
        return dense.reshape(len(extra), -1)[:, self.entry].T.astype(np.float32)

    def on_rows(self, rows: np.ndarray) -> "Problem":
        """Returns this problem weighing only the rows where `rows` (R,) bool is true (their weights rescaled
        to sum to 1): a fit on part of the sample, scored on the rest, shares one set of term values."""
        out = copy.copy(self)
        out.__dict__.pop("scale", None)
        seg_rows = self.entry_row[self.starts]                      # each segment's row
        weight = self.row_weight[seg_rows] * np.asarray(rows, dtype=bool)[seg_rows]
        out.segment_weight = weight / max(weight.sum(), 1e-12)
        return out

    def unconditioned(self, keys: list[int]) -> np.ndarray:
        """Returns a mask over the terms (F,) that leaves out these key terms' per-query-class copies."""
        mask = np.ones(len(self.feats), dtype=bool)
        k = len(self.keys)
        for key in keys:
            mask[[k + c * k + key for c in range(len(self.queries))]] = False
        return mask

    def flat(self, rows: np.ndarray) -> np.ndarray:
        """Returns (R, N) rows (a head's target) at the valid entries (E,), in double precision."""
        return np.asarray(rows, dtype=np.float64).reshape(-1)[self.entry]

    def class_weights(self, w: np.ndarray, idx: list[int]) -> np.ndarray:
        """Returns each query class's weights over the key terms (C + 1, K): shared plus its own."""
        k = len(self.keys)
        flat = np.zeros(k * (len(self.queries) + 2))   # shared (K), each class's (C x K), no word's (K, none)
        np.add.at(flat, np.asarray(idx, dtype=np.int64), np.asarray(w, dtype=np.float64))
        table = flat.reshape(-1, k)                     # (C + 2, K): row 0 shared, row c + 1 class c
        return table[0][None, :] + table[1:]

    def entry_scores(self, w: np.ndarray, idx: list[int]) -> np.ndarray:
        """Returns the weighted terms' score at every valid entry (E,)."""
        per = self.class_weights(w, idx).astype(self.values.dtype)
        out = np.empty(len(self.entry), dtype=np.float64)
        for c, (lo, hi) in enumerate(zip(self.bounds[:-1], self.bounds[1:])):
            out[lo:hi] = self.values[lo:hi] @ per[c]
        return out

    def scores(self, w: np.ndarray, idx: list[int]) -> np.ndarray:
        """Returns the rows' scores (R, N) for the weighted terms (0 at invalid keys)."""
        return self._rows(self.entry_scores(w, idx))

    def softmax(self, w: np.ndarray, idx: list[int]) -> np.ndarray:
        """Returns each row's softmax of the weighted terms over its valid keys, at the entries (E,)."""
        s = self.entry_scores(w, idx) if len(idx) else np.zeros(len(self.entry))
        e = np.exp(s - np.maximum.reduceat(s, self.starts)[self.segment])
        return e / np.add.reduceat(e, self.starts)[self.segment]

    def attention(self, w: np.ndarray, idx: list[int]) -> np.ndarray:
        """Returns the softmax rows (R, N) of the weighted terms over the valid keys."""
        return self._rows(self.softmax(w, idx))

    def _rows(self, flat: np.ndarray) -> np.ndarray:
        """Returns values at the entries (E,) laid out as (R, N) rows, 0 at invalid keys."""
        out = np.zeros(self.valid.size)
        out[self.entry] = flat
        return out.reshape(self.valid.shape)

    def fidelity(self, p: np.ndarray, target: np.ndarray) -> float:
        """Returns the row-weighted mean IoU of flat attention `p` (E,) against flat target rows."""
        lo = np.add.reduceat(np.minimum(p, target), self.starts)
        hi = np.maximum(np.add.reduceat(np.maximum(p, target), self.starts), 1e-12)
        return float((lo / hi) @ self.segment_weight)

    def iou(self, p: np.ndarray, target: np.ndarray) -> float:
        """Returns the row-weighted mean IoU of attention rows `p` (R, N) against the target rows."""
        return self.fidelity(self.flat(p), self.flat(target))

    def score_gradient(self, p: np.ndarray, target: np.ndarray, iou: bool) -> np.ndarray:
        """Returns d objective / d scores at the entries (E,), from flat attention and target: the IoU's
        ascent direction, or the cross-entropy's descent."""
        weight = self.segment_weight[self.segment]
        if not iou:
            return (target - p) * weight
        lo = np.add.reduceat(np.minimum(p, target), self.starts)[self.segment]
        hi = np.maximum(np.add.reduceat(np.maximum(p, target), self.starts), 1e-12)[self.segment]
        dp = np.where(p < target, 1.0 / hi, -lo / hi ** 2)      # d IoU_row / d p (a subgradient at ties)
        return p * (dp - np.add.reduceat(p * dp, self.starts)[self.segment]) * weight   # through the softmax

    def gradient(self, score_grad: np.ndarray) -> np.ndarray:
        """Returns d objective / d weight (F,) for every term, from d objective / d scores at the entries (E,)."""
        g = score_grad.astype(self.values.dtype)
        per_class = np.stack([self.values[lo:hi].T @ g[lo:hi]
                              for lo, hi in zip(self.bounds[:-1], self.bounds[1:])]).astype(np.float64)  # (C + 1, K)
        return np.concatenate([per_class.sum(axis=0), per_class[:-1].ravel()])

    @functools.cached_property
    def scale(self) -> np.ndarray:
        """Returns each term's typical size (F,): the mean over rows of its summed |values|."""
        size = np.zeros((len(self.valid), len(self.keys)))  # (R, K)
        np.add.at(size, self.entry_row, np.abs(self.values))
        share = np.bincount(self.row_class, minlength=len(self.queries) + 1)[:-1] / len(self.row_class)
        return np.concatenate([size.mean(axis=0), (share[:, None] * size.mean(axis=0)[None, :]).ravel()])

    @functools.cached_property
    def by_expr(self) -> dict[str, int]:
        """Returns each term's index by its expression's syntax tree (how `read` recognises a term);
        `pos_pair(tokens, q, k)` is the key term `key_is(tokens, k)` for queries of class q."""
        out = {ast.dump(ast.parse(f.expr, mode="eval").body): i for i, f in enumerate(self.feats)}
        for i, f in enumerate(self.feats):
            if f.query and f.key.expr.startswith("key_is("):
                pair = f'pos_pair(tokens, "{f.query}", {f.key.expr[len("key_is(tokens, "):]}'
                out[ast.dump(ast.parse(pair, mode="eval").body)] = i
        return out


    def index(self, expr: str) -> int:
        """Returns the index of the term written `expr`."""
        return self.by_expr[ast.dump(ast.parse(expr, mode="eval").body)]


def _classes(tokens: list[str], queries: tuple[str, ...]) -> np.ndarray:
    """Returns each token's query class: the index of its word's part of speech in `queries`, else len(queries)."""
    out = np.full(len(tokens), len(queries), dtype=np.int64)
    for c, q in enumerate(queries):
        rows = prelude.query_is(tokens, q)[:, 0] > 0 if tokens else np.zeros(0, dtype=bool)
        out[rows & (out == len(queries))] = c
    return out


def problem(fitter, linguistic: bool, causal: bool, sample=None) -> Problem:
    """Returns the score terms on a fitter's sample, or the given one of the same set (the set's
    annotations preloaded when linguistic)."""
    if linguistic:
        from evo import linguistic as annotations

        annotations.preload(fitter.aset_path)
    return Problem(sample or fitter.sample, score_terms.features(linguistic, causal), causal,
                   score_terms.queries(linguistic))
