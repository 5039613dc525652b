"""Scored programs: attention as a row softmax of a few additive, readable score terms, fitted to a head.

    def attention(tokens):
        '''A softmax of scores: +3.1 on the first token; +2.0 if the key is the query word's head; ...'''
        scores = 3.1 * sink(tokens)
        scores += 2.0 * head_matrix(tokens)
        scores += 1.2 * pos_pair(tokens, "NOUN", "DET")
        return softmax_rows(scores)

The terms come from `operators.score_terms`. `fit` grows a sparse set greedily: the term
whose weight's IoU gradient is steepest (either sign) joins, then every weight is refitted
(Adam, a few steps on the rows' cross-entropy to start, then on the IoU itself, the
paper's metric); the step with the best IoU after rounding weights to one decimal is kept.
Terms are computed here from the prelude's own trusted code; generated programs still
only run in the sandbox.
"""

from __future__ import annotations

import ast
import dataclasses
import functools

import numpy as np

from operators import fit as fitting
from operators import score_terms
from operators.score_terms import Feature

CE_STEPS = 40  # cross-entropy steps before each IoU refit: a smooth start for a non-smooth objective


@dataclasses.dataclass(frozen=True)
class Fit:
    terms: tuple[tuple[Feature, float], ...]   # (feature, weight), strongest first
    iou: float


class Problem:
    """The packed sample a scored program is fitted on: features (F, R, N), valid keys, row weights."""

    def __init__(self, sample, feats: list[Feature], causal: bool):
        self.feats = feats
        self.x = np.stack([sample.pack([score_terms.values(f, list(t)) for t in sample.tokens])
                           for f in feats]).astype(np.float32)   # (F, R, N)
        self.row_weight = sample.row_weight
        valid = np.zeros(self.x.shape[1:], dtype=bool)  # (R, N)
        r = 0
        for n in sample.lengths:
            valid[r:r + n, :n] = np.tril(np.ones((n, n), dtype=bool)) if causal else True
            r += n
        self.valid = valid

    def attention(self, w: np.ndarray, idx: list[int]) -> np.ndarray:
        """Returns the softmax rows (R, N) of the weighted features over the valid keys."""
        s = np.tensordot(w, self.x[idx], axes=1) if len(idx) else np.zeros(self.valid.shape)
        s = np.where(self.valid, s, -np.inf)
        e = np.where(self.valid, np.exp(s - s.max(axis=1, keepdims=True)), 0.0)
        return e / e.sum(axis=1, keepdims=True)

    def iou(self, p: np.ndarray, target: np.ndarray) -> float:
        """Returns the row-weighted mean IoU of attention rows `p` against the target rows."""
        return float(fitting.packed_iou(p, target, self.row_weight))

    @functools.cached_property
    def by_expr(self) -> dict[str, int]:
        """Returns each feature's index by its expression's syntax tree (how `read` recognises a term)."""
        return {ast.dump(ast.parse(f.expr, mode="eval").body): i for i, f in enumerate(self.feats)}


def problem(fitter, linguistic: bool, causal: bool) -> Problem:
    """Returns the score terms on a fitter's sample (the set's annotations preloaded when linguistic)."""
    if linguistic:
        from evo import linguistic as annotations

        annotations.preload(fitter.aset_path)
    return Problem(fitter.sample, score_terms.features(linguistic, causal), causal)


def _score_gradient(p: np.ndarray, target: np.ndarray, row_weight: np.ndarray, iou: bool) -> np.ndarray:
    """Returns d objective / d scores (R, N): the IoU's ascent direction, or the cross-entropy's descent."""
    if not iou:
        return (target - p) * row_weight[:, None]
    lo, hi = np.minimum(p, target).sum(-1, keepdims=True), np.maximum(p, target).sum(-1, keepdims=True)
    hi = np.maximum(hi, 1e-12)
    dp = np.where(p < target, 1.0 / hi, -lo / hi ** 2)      # d IoU_row / d p (a subgradient at ties)
    return p * (dp - (p * dp).sum(-1, keepdims=True)) * row_weight[:, None]   # through the softmax


def read(source: str, problem: Problem) -> list[tuple[int, float]] | None:
    """Returns a scored program's terms as (feature index, weight), or None when it is not one of this form."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    att = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "attention"]
    body = att[0].body if att else []
    body = body[1:] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body
    if len(body) < 2 or ast.unparse(body[-1]) != "return softmax_rows(scores)":
        return None
    known = problem.by_expr
    terms = []
    for k, stmt in enumerate(body[:-1]):
        first = k == 0 and isinstance(stmt, ast.Assign) and ast.unparse(stmt.targets[0]) == "scores"
        more = k > 0 and isinstance(stmt, ast.AugAssign) and isinstance(stmt.op, (ast.Add, ast.Sub)) \
            and ast.unparse(stmt.target) == "scores"
        value = stmt.value if first or more else None
        weight = _number(value.left) if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mult) else None
        index = known.get(ast.dump(value.right)) if weight is not None else None
        if index is None:
            return None
        sign = -1.0 if more and isinstance(stmt.op, ast.Sub) else 1.0
        terms.append((index, sign * weight))
    return terms


def _number(node: ast.expr) -> float | None:
    """Returns the value of a literal number, negative ones included (`-1.8`), else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return None if inner is None else -inner
    ok = isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
    return float(node.value) if ok else None


def fit(problem: Problem, target: np.ndarray, max_terms: int = 4, steps: int = 120,
        start: list[tuple[int, float]] = (), allowed: np.ndarray | None = None) -> Fit:
    """Returns the best sparse scored fit to one head's packed target rows (R, N), grown from `start`'s terms.

    `allowed` (F,) bool: the features that may join (all when None).
    """
    target = np.where(problem.valid, target.astype(np.float64), 0.0)
    idx = [i for i, _ in start]
    w = np.array([x for _, x in start], dtype=np.float64)
    if idx:
        w = _descend(problem, target, idx, w, steps)
    best = _rounded(problem, target, idx, w) if idx else Fit((), problem.iou(problem.attention(w, idx), target))
    for _ in range(max_terms - len(idx)):
        grad = np.tensordot(problem.x, _score_gradient(problem.attention(w, idx), target, problem.row_weight,
                                                       True), axes=([1, 2], [0, 1]))   # (F,)
        grad[idx] = 0.0
        if allowed is not None:
            grad[~allowed] = 0.0
        pick = int(np.argmax(np.abs(grad)))
        if abs(grad[pick]) < 1e-7:
            break
        idx.append(pick)
        w = _descend(problem, target, idx, np.append(w, np.sign(grad[pick])), steps)
        found = _rounded(problem, target, idx, w)
        if found.iou > best.iou + 1e-4:
            best = found
    return best


def prune(problem: Problem, target: np.ndarray, terms: list[tuple[int, float]], loss: float,
          steps: int = 60) -> Fit:
    """Returns the fit with the terms the head can do without dropped, refitting after each drop,
    giving up at most `loss` IoU in all (the term the fit misses least goes first)."""
    target = np.where(problem.valid, target.astype(np.float64), 0.0)
    idx, w = [i for i, _ in terms], np.array([x for _, x in terms], dtype=np.float64)
    w = _descend(problem, target, idx, w, steps)
    kept = _rounded(problem, target, idx, w)
    floor = kept.iou - loss
    while len(idx) > 1:
        trials = []
        for k in range(len(idx)):
            rest = idx[:k] + idx[k + 1:]
            w2 = _descend(problem, target, rest, np.delete(w, k), steps)
            trials.append((_rounded(problem, target, rest, w2), rest, w2))
        found, rest, w2 = max(trials, key=lambda t: t[0].iou)
        if found.iou < floor:
            break
        kept, idx, w = found, rest, w2
    return kept


def _rounded(problem: Problem, target: np.ndarray, idx: list[int], w: np.ndarray) -> Fit:
    """Returns the fit with weights rounded to one decimal (zeros dropped), strongest term first."""
    rounded = np.round(w, 1)
    keep = [i for i, x in enumerate(rounded) if x != 0.0]
    score = problem.iou(problem.attention(rounded[keep], [idx[i] for i in keep]), target)
    order = sorted(keep, key=lambda i: -abs(rounded[i]))
    return Fit(tuple((problem.feats[idx[i]], float(rounded[i])) for i in order), score)


def _descend(problem: Problem, target: np.ndarray, idx: list[int], w: np.ndarray, steps: int) -> np.ndarray:
    """Returns weights refitted by Adam: cross-entropy first, then the IoU; the best IoU seen is kept."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    x = problem.x[idx]
    best, best_w = -1.0, w
    for t in range(1, CE_STEPS + steps + 1):
        p = problem.attention(w, idx)
        on_iou = t > CE_STEPS
        if on_iou:
            score = problem.iou(p, target)
            if score > best:
                best, best_w = score, w
        g = np.tensordot(x, _score_gradient(p, target, problem.row_weight, on_iou), axes=([1, 2], [0, 1]))
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        lr = 0.3 if not on_iou else 0.1
        w = np.clip(w + lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8), -20.0, 20.0)
    return best_w


def source(result: Fit) -> str:
    """Returns the program for a fit: one score term per line, then the softmax; its account as the docstring."""
    if not result.terms:
        raise ValueError("a scored program needs at least one term")
    (first, w0), rest = result.terms[0], result.terms[1:]
    lines = [f"    scores = {w0:g} * {first.expr}"]
    lines += [f"    scores {'+' if w > 0 else '-'}= {abs(w):g} * {f.expr}" for f, w in rest]
    text = account(result)
    return (f'"""{text[:1].upper() + text[1:]}."""\n\n\n'
            "def attention(tokens):\n" + "\n".join(lines) + "\n    return softmax_rows(scores)\n")


def account(result: Fit) -> str:
    """Returns the fit in words: "a softmax of scores: +3.1 on the first token; +2.0 if the key is ..."."""
    words = "; ".join(f"{w:+g} {f.meaning}" for f, w in result.terms)
    return f"a softmax of scores: {words}"
