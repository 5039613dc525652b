"""Scored programs: attention as a row softmax of a few additive, readable score terms, fitted to a head.

    def attention(tokens):
        '''A softmax of scores: +3.1 on the first token; +2.0 if the key is the query word's head; ...'''
        return softmax_rows(3.1 * sink(tokens) + 2.0 * head_matrix(tokens)
                            + 1.2 * pos_pair(tokens, "NOUN", "DET"))

`FEATURES` is the vocabulary of score terms, each a prelude expression with a one-line
meaning: positions and token kinds always, the linguistic terms (heads, part-of-speech
pairs, chunks, clauses) where the extra is installed. `fit` grows a sparse set of terms
greedily (the term whose weight's gradient is steepest is added, then all weights are
refitted by gradient descent on the rows' cross-entropy to the head), keeps the step with
the best IoU, and rounds weights to one decimal. Features are computed here from the
prelude's own trusted code; generated programs still only run in the sandbox.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from evo import prelude

_POS = ("NOUN", "VERB", "DET", "ADJ", "ADP", "PRON", "AUX", "PUNCT", "PROPN", "ADV", "CCONJ")
_NAMES = {"NOUN": "noun", "VERB": "verb", "DET": "determiner", "ADJ": "adjective", "ADP": "preposition",
          "PRON": "pronoun", "AUX": "auxiliary", "PUNCT": "punctuation", "PROPN": "proper noun", "ADV": "adverb",
          "CCONJ": "conjunction"}


@dataclasses.dataclass(frozen=True)
class Feature:
    expr: str          # the prelude expression a program writes, over `tokens`
    meaning: str       # what a positive weight rewards, in words
    linguistic: bool   # needs the linguistic extra's annotations
    compute: Callable[[list[str]], np.ndarray] = dataclasses.field(compare=False, repr=False, default=None)


def _pattern(name: str, meaning: str) -> Feature:
    return Feature(f"{name}(tokens)", meaning, False, getattr(prelude, name))


def _base() -> list[Feature]:
    return [_pattern("sink", "on the first token"), _pattern("self_token", "on the token itself"),
            _pattern("previous_token", "on the previous token"), _pattern("two_back", "on the token two back"),
            _pattern("decay", "on recent tokens, halving per step back"),
            _pattern("same_token", "on copies of the same token"),
            _pattern("previous_copy", "on the last earlier copy of the token"),
            _pattern("induction", "on what followed earlier copies of the previous token"),
            _pattern("punctuation", "on punctuation"), _pattern("last_delimiter", "on the most recent delimiter"),
            _pattern("word_head", "on the first piece of the token's own word"),
            _pattern("previous_word", "on the first piece of the previous word")]


def _linguistic() -> list[Feature]:
    out = [Feature("head_matrix(tokens)", "if the key is the query word's head", True, prelude.head_matrix),
           Feature("head_matrix(tokens).T", "if the key's head is the query word", True,
                   lambda t: prelude.head_matrix(t).T)]
    for q in _POS:
        for k in _POS:
            out.append(Feature(f'pos_pair(tokens, "{q}", "{k}")', f"{_NAMES[q]} to {_NAMES[k]}", True,
                               lambda t, q=q, k=k: prelude.pos_pair(t, q, k)))
    for q in ("NOUN", "VERB", "DET", "ADJ", "ADP", "PUNCT"):
        out.append(Feature(f'pos_matrix(tokens, "{q}")[:, None] * previous_token(tokens)',
                           f"from a {_NAMES[q]} to the previous token", True,
                           lambda t, q=q: prelude.pos_matrix(t, q)[:, None] * prelude.previous_token(t)))
    return out


def features(linguistic: bool) -> list[Feature]:
    """Returns the score terms available: the base ones, and the linguistic ones when wanted."""
    return _base() + (_linguistic() if linguistic else [])


def values(feature: Feature, tokens: list[str]) -> np.ndarray:
    """Returns the feature's (n, n) matrix for one sentence, computed by the prelude."""
    return np.asarray(feature.compute(list(tokens)), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class Fit:
    terms: tuple[tuple[Feature, float], ...]   # (feature, weight), strongest first
    iou: float


class Problem:
    """The packed sample a scored program is fitted on: features (F, R, N), targets, mask, row weights."""

    def __init__(self, sample, feats: list[Feature], causal: bool):
        self.feats = feats
        self.x = np.stack([sample.pack([values(f, list(t)) for t in sample.tokens]) for f in feats])  # (F, R, N)
        self.x = self.x.astype(np.float32)
        self.row_weight = sample.row_weight
        valid = np.zeros(self.x.shape[1:], dtype=bool)  # (R, N)
        r = 0
        for n in sample.lengths:
            block = np.tril(np.ones((n, n), dtype=bool)) if causal else np.ones((n, n), dtype=bool)
            valid[r:r + n, :n] = block
            r += n
        self.valid = valid

    def subset(self, keep) -> "Problem":
        """Returns the same problem over only the features at `keep`."""
        out = object.__new__(Problem)
        out.feats = [self.feats[i] for i in keep]
        out.x, out.row_weight, out.valid = self.x[np.asarray(keep, dtype=int)], self.row_weight, self.valid
        return out

    def attention(self, w: np.ndarray, idx: list[int]) -> np.ndarray:
        """Returns the softmax rows (R, N) of the weighted features over the valid keys."""
        s = np.tensordot(w, self.x[idx], axes=1) if idx else np.zeros(self.valid.shape)
        s = np.where(self.valid, s, -np.inf)
        s = s - s.max(axis=1, keepdims=True)
        e = np.where(self.valid, np.exp(s), 0.0)
        return e / e.sum(axis=1, keepdims=True)

    def iou(self, p: np.ndarray, target: np.ndarray) -> float:
        num, den = np.minimum(p, target).sum(-1), np.maximum(p, target).sum(-1)
        return float(np.divide(num, den, out=np.zeros_like(num), where=den > 0) @ self.row_weight)


def problem(fitter, linguistic: bool, causal: bool) -> Problem:
    """Returns the score terms on a fitter's sample (the set's annotations preloaded when linguistic)."""
    if linguistic:
        from evo import linguistic as annotations

        annotations.preload(fitter.aset_path)
    return Problem(fitter.sample, features(linguistic), causal)


def fit(problem: Problem, target: np.ndarray, max_terms: int = 4, steps: int = 150) -> Fit:
    """Returns the best sparse scored fit to one head's packed target rows (R, N)."""
    target = np.where(problem.valid, target.astype(np.float64), 0.0)
    idx: list[int] = []
    w = np.zeros(0)
    best: Fit | None = None
    for _ in range(max_terms):
        p = problem.attention(w, idx)
        grad = np.einsum("frn,rn,r->f", problem.x, p - target, problem.row_weight)  # d loss / d w_f
        grad[idx] = 0.0
        pick = int(np.argmin(grad))
        if grad[pick] >= -1e-6:
            break
        idx.append(pick)
        w = _descend(problem, target, idx, np.append(w, 1.0), steps)
        rounded = np.round(w, 1)
        keep = [i for i, x in enumerate(rounded) if x != 0.0]
        score = problem.iou(problem.attention(rounded[keep], [idx[i] for i in keep]), target)
        if best is None or score > best.iou + 1e-4:
            order = sorted(keep, key=lambda i: -abs(rounded[i]))
            best = Fit(tuple((problem.feats[idx[i]], float(rounded[i])) for i in order), score)
    return best or Fit((), problem.iou(problem.attention(np.zeros(0), []), target))


def _descend(problem: Problem, target: np.ndarray, idx: list[int], w: np.ndarray, steps: int) -> np.ndarray:
    """Returns weights refitted by Adam on the row-weighted cross-entropy to the target."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    x = problem.x[idx]
    for t in range(1, steps + 1):
        p = problem.attention(w, idx)
        g = np.einsum("frn,rn,r->f", x, p - target, problem.row_weight)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        w = w - 0.3 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return np.clip(w, -20.0, 20.0)


def source(result: Fit) -> str:
    """Returns the program for a fit: one softmax over its terms, its account as the docstring."""
    if not result.terms:
        raise ValueError("a scored program needs at least one term")
    parts = [f"{w:g} * {f.expr}" for f, w in result.terms]
    body = " + ".join(parts).replace("+ -", "- ")
    return (f'"""{account(result)[:1].upper() + account(result)[1:]}."""\n\n\n'
            f"def attention(tokens):\n    return softmax_rows({body})\n")


def account(result: Fit) -> str:
    """Returns the fit in words: "scores +3.1 on the first token; +2.0 if the key is the query word's head"."""
    words = "; ".join(f"{w:+g} {f.meaning}" for f, w in result.terms)
    return f"a softmax of scores: {words}"
