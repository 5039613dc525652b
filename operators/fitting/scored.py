"""Scored programs: attention as a row softmax of additive, readable score terms, fitted to a head.

    def attention(tokens):
        '''A softmax of scores: +3.1 on the first token; +2.0 if the key is the query word's head; ...'''
        scores = 3.1 * sink(tokens)
        scores += 2.0 * head_matrix(tokens)
        scores += query_is(tokens, "NOUN") * (1.2 * key_is(tokens, "DET") + 0.5 * previous_token(tokens))
        return softmax_rows(scores)

The terms come from `operators.shared.score_terms`: key terms for every query, and each key term for
one kind of query word (written as that kind's group, as above). `fit` grows a sparse set
greedily: the term whose weight's IoU gradient is steepest (either sign) joins, then every
weight is refitted (Adam, a few steps on the rows' cross-entropy to start, then on the IoU
itself, the paper's metric); the step with the best IoU after rounding weights to one decimal
is kept. `fit_wide` weights every term at once under an L1 penalty and keeps the strongest:
the many small terms of a head's table. The sample they are fitted on is packed by
`operators.fitting.scored_problem`. Terms are computed from the prelude's own trusted code;
generated programs still only run in the sandbox.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from operators.shared.score_terms import Feature
from operators.fitting.scored_problem import Problem, problem  # noqa: F401  (the packed sample; its builder)

CE_STEPS = 40     # cross-entropy steps before each IoU refit: a smooth start for a non-smooth objective
WIDE_STEPS = 100  # IoU steps of a wide fit's refit (twice that for its dense fit)
WIDE_L1 = 0.0003  # a wide fit's L1 penalty per unit of weight: most terms stay near zero
TRIALS = 12       # a program with more terms prunes its weakest first, not every term in turn


@dataclasses.dataclass(frozen=True)
class Fit:
    terms: tuple[tuple[Feature, float], ...]   # (feature, weight), strongest first
    iou: float


def fit(problem: Problem, target: np.ndarray, max_terms: int = 4, steps: int = 120,
        start: list[tuple[int, float]] = (), allowed: np.ndarray | None = None) -> Fit:
    """Returns the best sparse scored fit to one head's packed target rows (R, N), grown from `start`'s terms.

    `allowed` (F,) bool: the terms that may join (all when None).
    """
    target = problem.flat(target)
    idx = [i for i, _ in start]
    w = np.array([x for _, x in start], dtype=np.float64)
    if idx:
        w = _descend(problem, target, idx, w, steps)
    best = _rounded(problem, target, idx, w) if idx else Fit((), problem.fidelity(problem.softmax(w, idx), target))
    for _ in range(max_terms - len(idx)):
        grad = problem.gradient(problem.score_gradient(problem.softmax(w, idx), target, True))
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


def fit_wide(problem: Problem, target: np.ndarray, max_terms: int = 40, l1: float = WIDE_L1,
             start: list[tuple[int, float]] = (), allowed: np.ndarray | None = None) -> Fit:
    """Returns a scored fit of up to `max_terms` terms chosen at once: every allowed term is weighted
    (an L1 penalty keeps most near zero), the strongest are kept and refitted.

    Wider than `fit`'s greedy growth, at the cost of one dense fit: what a head's part-of-speech
    table looks like ("from a noun: +1.2 on a determiner"), not only its few strongest terms.
    """
    target = problem.flat(target)
    every = np.flatnonzero(allowed) if allowed is not None else np.arange(len(problem.feats))
    w = np.zeros(len(every))
    where = {int(t): k for k, t in enumerate(every)}
    for t, x in start:
        if t in where:
            w[where[t]] = x
    w = _descend(problem, target, list(every), w, 2 * WIDE_STEPS, l1=l1)
    strength = np.abs(w) * problem.scale[every]
    keep = [k for k in np.argsort(-strength)[:max_terms] if abs(w[k]) >= 0.05]
    if not keep:
        return Fit((), 0.0)
    idx = [int(every[k]) for k in keep]
    return _rounded(problem, target, idx, _descend(problem, target, idx, w[keep], WIDE_STEPS))


def prune(problem: Problem, target: np.ndarray, terms: list[tuple[int, float]], loss: float,
          steps: int = 60) -> Fit:
    """Returns the fit with the terms the head can do without dropped, refitting after each drop,
    giving up at most `loss` IoU in all (the term the fit misses least goes first).

    A wide program (over TRIALS terms) first tries dropping its weakest quarter at once, then
    its weakest terms one at a time: a handful of refits, not one per term.
    """
    target = problem.flat(target)
    idx, w = [i for i, _ in terms], np.array([x for _, x in terms], dtype=np.float64)
    w = _descend(problem, target, idx, w, steps)
    kept = _rounded(problem, target, idx, w)
    floor = kept.iou - loss
    while len(idx) > 1:
        trials = []
        for drop in _drops(problem, idx, w):
            rest = [t for k, t in enumerate(idx) if k not in drop]
            w2 = _descend(problem, target, rest, np.delete(w, sorted(drop)), steps)
            trials.append((_rounded(problem, target, rest, w2), rest, w2))
            if len(drop) > 1 and trials[-1][0].iou >= floor:
                break
        found, rest, w2 = max(trials, key=lambda t: t[0].iou)
        if found.iou < floor:
            break
        kept, idx, w = found, rest, w2
    return kept


def _drops(problem: Problem, idx: list[int], w: np.ndarray) -> list[set[int]]:
    """Returns the sets of positions to try dropping: each term, or for a wide program its weakest
    quarter together, then its TRIALS // 2 weakest terms one by one."""
    if len(idx) <= TRIALS:
        return [{k} for k in range(len(idx))]
    weakest = [int(k) for k in np.argsort(np.abs(w) * problem.scale[idx])]
    return [set(weakest[:len(idx) // 4])] + [{k} for k in weakest[:TRIALS // 2]]


def _rounded(problem: Problem, target: np.ndarray, idx: list[int], w: np.ndarray) -> Fit:
    """Returns the fit with weights rounded to one decimal (zeros dropped), strongest term first."""
    rounded = np.round(w, 1)
    keep = [i for i, x in enumerate(rounded) if x != 0.0]
    score = problem.fidelity(problem.softmax(rounded[keep], [idx[i] for i in keep]), target)
    order = sorted(keep, key=lambda i: -abs(rounded[i]))
    return Fit(tuple((problem.feats[idx[i]], float(rounded[i])) for i in order), score)


def _descend(problem: Problem, target: np.ndarray, idx: list[int], w: np.ndarray, steps: int,
             l1: float = 0.0) -> np.ndarray:
    """Returns weights refitted by Adam: cross-entropy first, then the IoU (less `l1` times the
    weights' sizes, where asked); the best objective seen is kept."""
    m, v = np.zeros_like(w), np.zeros_like(w)
    best, best_w = -np.inf, w
    for t in range(1, CE_STEPS + steps + 1):
        p = problem.softmax(w, idx)
        on_iou = t > CE_STEPS
        if on_iou:
            score = problem.fidelity(p, target) - l1 * np.abs(w).sum()
            if score > best:
                best, best_w = score, w
        g = problem.gradient(problem.score_gradient(p, target, on_iou))[idx] - l1 * np.sign(w)
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        lr = 0.3 if not on_iou else 0.1
        w = np.clip(w + lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8), -20.0, 20.0)
    return best_w
