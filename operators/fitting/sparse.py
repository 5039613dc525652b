"""Sparse fits: the best scored program of at most a few terms, made on purpose for the readable end of a front.

    readable   one term per group of near-identical terms (|correlation| >= COLLINEAR on the fit
               sample): the shortest expression, base terms before linguistic ones, so that `sink`
               stands for `special_tokens` and `key_is(tokens, "DET")` for `key_dep(tokens, "det")`
    fit        a beam search over subsets: from each kept subset, the `width` terms whose weight's
               IoU gradient is steepest join one at a time, every weight is refitted, and the
               `beam` best subsets go on; the best subset of at most `max_terms` terms whose
               program fits in `max_nodes` AST nodes wins

    cut        a head's wide table cut down to a node budget: its weakest fifth (weight times the
               term's spread) dropped and the rest refitted, again, until the program fits in
               `max_nodes` AST nodes; the terms dropped last tried again, then refitted in full.
               The front between a few terms and the whole table: the fifteen terms that carry
               most of a hundred-term table

Greedy growth (`scored.fit`) keeps one path and often spends its first term on what a second
term would make redundant; a small beam finds the pair or triple that works together. Measured
before `cut` was written (gemma-3-270m, 12 heads, fitted on half the search split, scored on the
validation split): the wide table 0.771, cut to 200 nodes 0.758, greedy growth to 200 nodes
0.759 (twice the time), the best of at most four terms in 60 nodes 0.743.
"""

from __future__ import annotations

import numpy as np

from evo import program
from operators.fitting import scored, scored_text
from operators.shared import canonical

COLLINEAR = 0.99   # |correlation| at which two key terms count as one
BEAM = 3           # subsets kept at each size
WIDTH = 6          # terms tried from each kept subset
STEPS = 60         # IoU steps of each refit
KEEP = 0.8         # share of a table's terms a cut keeps each round
FILL = 8           # terms a cut tries again, once within its budget


def readable(problem: scored.Problem, allowed: np.ndarray | None = None) -> np.ndarray:
    """Returns (F,) bool: the allowed terms, less those that duplicate a more readable allowed key term."""
    allowed = np.ones(len(problem.feats), dtype=bool) if allowed is None else allowed.copy()
    k = len(problem.keys)
    values = problem.values.astype(np.float64)                          # (E, K)
    centred = values - values.mean(axis=0)
    norm = np.sqrt((centred ** 2).sum(axis=0))
    live = norm > 1e-9
    corr = np.zeros((k, k))
    corr[np.ix_(live, live)] = (centred[:, live].T @ centred[:, live]) / np.outer(norm[live], norm[live])
    order = sorted(range(k), key=lambda t: (problem.keys[t].linguistic, len(problem.keys[t].expr), t))
    kept: list[int] = []
    for t in order:
        if not allowed[t]:
            continue
        if not live[t] or any(abs(corr[t, s]) >= COLLINEAR for s in kept):
            allowed[t] = False   # a constant term, or a twin of a more readable one
            continue
        kept.append(t)
    dropped = ~allowed[:k]
    for c in range(len(problem.queries)):
        allowed[k + c * k: k + (c + 1) * k] &= ~dropped    # a conditioned term follows its key term
    return allowed


def fit(problem: scored.Problem, target: np.ndarray, max_terms: int = 3, max_nodes: int | None = None,
        allowed: np.ndarray | None = None, causal: bool = True, beam: int = BEAM, width: int = WIDTH) -> scored.Fit:
    """Returns the best scored fit of at most `max_terms` terms (and `max_nodes` AST nodes) to one
    head's packed target rows (R, N); an empty fit when no term helps."""
    flat = problem.flat(target)
    allowed = readable(problem, allowed)
    frontier = [((), np.zeros(0))]
    best = scored.Fit((), problem.fidelity(problem.softmax(np.zeros(0), []), flat))
    seen: set[frozenset] = set()
    for _ in range(max_terms):
        grown = []
        for idx, w in frontier:
            for t in _steepest(problem, flat, list(idx), w, allowed, width):
                subset = idx + (t,)
                if frozenset(subset) in seen:
                    continue
                seen.add(frozenset(subset))
                w2 = scored._descend(problem, flat, list(subset), np.append(w, 0.0), STEPS)
                found = scored._rounded(problem, flat, list(subset), w2)
                grown.append((found.iou, subset, w2))
                if found.iou > best.iou + 1e-4 and _fits(found, max_nodes, causal):
                    best = found
        frontier = [(s, w) for _, s, w in sorted(grown, key=lambda g: -g[0])[:beam]]
        if not frontier:
            break
    return best


def _steepest(problem: scored.Problem, flat: np.ndarray, idx: list[int], w: np.ndarray,
              allowed: np.ndarray, width: int) -> list[int]:
    """Returns the `width` allowed terms not in `idx` whose weight's IoU gradient is steepest."""
    grad = np.abs(problem.gradient(problem.score_gradient(problem.softmax(w, idx), flat, True)))
    grad[~allowed] = 0.0
    grad[idx] = 0.0
    picks = [int(t) for t in np.argsort(-grad)[:width]]
    return [t for t in picks if grad[t] > 1e-7]


def _fits(found: scored.Fit, max_nodes: int | None, causal: bool) -> bool:
    """Returns whether the fit's canonical program is within `max_nodes` AST nodes (always, when no limit)."""
    if max_nodes is None or not found.terms:
        return bool(found.terms)
    return program.length(canonical.tidy(scored_text.source(found), causal)) <= max_nodes


def cut(problem: scored.Problem, target: np.ndarray, terms: list[tuple[int, float]], max_nodes: int,
        causal: bool = True) -> scored.Fit:
    """Returns the fit of the strongest of `terms` (indices, weights: a head's wide table) whose program fits
    in `max_nodes` AST nodes, refitted; an empty fit when not even one term does.

    Terms cost unequal nodes (an invented term carries its definition, a token table its entries): a term
    that alone overruns the budget never enters, and where the cut overshoots, the terms it dropped last are tried again, strongest first,
    and each that still fits and helps stays."""
    flat = problem.flat(target)
    affordable = [(i, x) for i, x in terms if _fits(scored.Fit(((problem.feats[i], x),), 0.0), max_nodes, causal)]
    idx, w = [i for i, _ in affordable], np.array([x for _, x in affordable], dtype=np.float64)
    dropped: list[tuple[int, float]] = []
    while idx:
        found = scored._rounded(problem, flat, idx, w)
        if _fits(found, max_nodes, causal):
            return _filled(problem, flat, idx, w, found, dropped[::-1][:FILL], max_nodes, causal)
        order = np.argsort(-np.abs(w) * problem.scale[idx])
        keep = order[:min(len(idx) - 1, max(1, int(len(idx) * KEEP)))]
        dropped += [(idx[k], w[k]) for k in order[len(keep):][::-1]]     # weakest first: the last dropped end it
        idx, w = [idx[k] for k in keep], w[keep]
        if idx:
            w = scored._descend(problem, flat, idx, w, STEPS)
    return scored.Fit((), 0.0)


def _filled(problem, flat, idx, w, found, candidates, max_nodes, causal) -> scored.Fit:
    """Returns the cut fit with each candidate (index, weight; strongest first) added that fits and helps,
    then refitted in full."""
    for t, x in candidates:
        w2 = scored._descend(problem, flat, idx + [t], np.append(w, x), STEPS)
        grown = scored._rounded(problem, flat, idx + [t], w2)
        if grown.iou > found.iou + 1e-4 and _fits(grown, max_nodes, causal):
            idx, w, found = idx + [t], w2, grown
    w = scored._descend(problem, flat, idx, w, scored.WIDE_STEPS)
    final = scored._rounded(problem, flat, idx, w)
    return final if final.iou >= found.iou and _fits(final, max_nodes, causal) else found
