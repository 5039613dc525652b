"""Selection: per-head NSGA-II fronts, head islands, and parent choice.

How heads share a population. One program is scored against every head at once, and one
program often explains many heads (a previous-token program fits a dozen of them), so
the search keeps a single shared archive of every evaluated program, never one private
population per head. On top of that archive:

- Every head has its own Pareto front and its own NSGA-II selection (DEAP's `selNSGA2`)
  over its objectives: IoU with that head (maximise), program length (minimise), and,
  when a downstream measure is plugged in, the perplexity cost of replacing that head
  with the program (minimise). Two costs whose difference is within `NOISE_Z` standard
  errors of it count as equal: a measurement on a few hundred tokens cannot order them,
  so neither dominates the other on cost.
- Heads are clustered into islands by the similarity of their IoU profiles over the seed
  programs (k-means, seeded), so heads that behave alike -- all the previous-token heads,
  all the sink heads -- breed together. An island's population is the union of its heads'
  NSGA-II selections.
- Each variation request targets one head. Heads are drawn with weight
  `(1 - best IoU)`, boosted when the head improved in the last few generations and damped
  by how many requests it has had since it last improved: the budget goes where heads are
  badly explained and where the search is making progress, and stops being sunk into
  heads that do not move. The first parent is a tournament winner (by IoU with the target
  head) from that head's NSGA-II selection; a crossover partner comes from the same
  island, or, at the migration rate, from another island, so patterns that explain one
  cluster can reach another.

Per head, NSGA-II runs on a bounded candidate pool (the top programs by IoU with the
head plus its exact front), so selection costs the same after a day as after a minute.
"""

from __future__ import annotations

import numpy as np
from deap import base, tools

PPL_MISSING = 1e9  # a finite stand-in for "no downstream cost measured": worst, but crowding stays finite
NOISE_Z = 2.0      # costs closer than this many standard errors of their difference are equal


class _Fitness2(base.Fitness):
    weights = (1.0, -1.0)  # IoU up, length down


class _Fitness3(base.Fitness):
    weights = (1.0, -1.0, -1.0)  # IoU up, length down, perplexity cost down
    se = 0.0  # the cost's standard error

    def dominates(self, other, obj=slice(None)) -> bool:
        """Returns whether this fitness dominates `other`, costs within noise counting as equal."""
        better = False
        mine, theirs = list(self.wvalues), list(other.wvalues)
        noise = NOISE_Z * float(np.hypot(self.se, other.se))
        if abs(mine[2] - theirs[2]) <= noise:
            mine[2] = theirs[2]
        for a, b in zip(mine[obj], theirs[obj]):
            if a > b:
                better = True
            elif a < b:
                return False
        return better


class _Individual:
    """A program index carrying a DEAP fitness, as `selNSGA2` expects."""

    __slots__ = ("index", "fitness")

    def __init__(self, index: int, values: tuple[float, ...], se: float = 0.0):
        self.index = index
        self.fitness = (_Fitness2 if len(values) == 2 else _Fitness3)(values)
        if se:
            self.fitness.se = float(se)


def objectives(iou: np.ndarray, lengths: np.ndarray, ppl: np.ndarray | None) -> np.ndarray:
    """Returns the (N, 2 or 3) objective table for one head; `ppl` NaN means not measured."""
    cols = [iou.astype(np.float64), lengths.astype(np.float64)]
    if ppl is not None:
        cols.append(np.where(np.isnan(ppl), PPL_MISSING, ppl))
    return np.stack(cols, axis=1)


def front_2d(iou: np.ndarray, lengths: np.ndarray, ok: np.ndarray) -> list[int]:
    """Returns the indices on the exact IoU/length Pareto front, shortest first."""
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((-iou[idx], lengths[idx]))]  # by length, then IoU descending
    out: list[int] = []
    best = -np.inf
    last_len, last_iou = None, None
    for i in order:
        if iou[i] > best:
            out.append(int(i))
            best = iou[i]
            last_len, last_iou = lengths[i], iou[i]
        elif lengths[i] == last_len and iou[i] == last_iou:
            out.append(int(i))  # an exact tie is not dominated
    return out


def candidates(iou: np.ndarray, lengths: np.ndarray, ok: np.ndarray, pool: int,
               extra: np.ndarray | None = None) -> np.ndarray:
    """Returns the sorted candidate pool for one head: its front, top `pool` by IoU, and `extra`."""
    idx = np.flatnonzero(ok)
    top = idx[np.argsort(-iou[idx], kind="stable")[:pool]]
    parts = [top, np.asarray(front_2d(iou, lengths, ok), dtype=np.int64)]
    if extra is not None:
        extra = np.asarray(extra, dtype=np.int64)
        parts.append(extra[ok[extra]])
    return np.unique(np.concatenate(parts))


def _individuals(table: np.ndarray, pool_idx: np.ndarray, se: np.ndarray | None) -> list[_Individual]:
    return [_Individual(int(i), tuple(table[i]), 0.0 if se is None else se[i]) for i in pool_idx]


def front(table: np.ndarray, pool_idx: np.ndarray, se: np.ndarray | None = None) -> list[int]:
    """Returns the first non-dominated front (archive indices, ascending) within the pool."""
    if len(pool_idx) == 0:
        return []
    inds = _individuals(table, pool_idx, se)
    first = tools.sortNondominated(inds, len(inds), first_front_only=True)[0]
    return sorted(ind.index for ind in first)


def nsga2(table: np.ndarray, pool_idx: np.ndarray, mu: int, se: np.ndarray | None = None) -> list[int]:
    """Returns `mu` archive indices chosen by NSGA-II from the pool, best first (costs within noise equal)."""
    inds = _individuals(table, pool_idx, se)
    if len(inds) <= mu:
        chosen = inds
    else:
        chosen = tools.selNSGA2(inds, mu)
    return [ind.index for ind in chosen]


def cluster(profiles: np.ndarray, n_islands: int, rng: np.random.Generator,
            iterations: int = 50) -> np.ndarray:
    """Returns an island label per head: k-means (k-means++ start) on rows of `profiles`."""
    n = len(profiles)
    k = max(1, min(n_islands, n))
    x = profiles.astype(np.float64)
    centres = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        total = d2.sum()
        pick = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centres.append(x[pick])
    c = np.array(centres)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        labels = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        new = np.array([x[labels == j].mean(0) if np.any(labels == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    _, labels = np.unique(labels, return_inverse=True)  # no empty islands
    return labels.astype(np.int64)


def head_weights(best: np.ndarray, improved_at: np.ndarray, since: np.ndarray, generation: int,
                 recent: int = 3, recent_bonus: float = 1.0, patience: float = 40.0) -> np.ndarray:
    """Returns the probability of targeting each head in the next requests."""
    gap = np.clip(1.0 - best, 0.02, 1.0)
    boost = 1.0 + recent_bonus * (generation - improved_at <= recent)
    damp = 1.0 / (1.0 + since / patience)
    w = gap * boost * damp
    return w / w.sum()


def partner_scores(iou: np.ndarray, first: int, k: int, novelty: float) -> np.ndarray:
    """Returns crossover-partner scores for head k: IoU plus a bonus for a profile unlike `first`'s."""
    centred = iou - iou.mean(axis=1, keepdims=True)  # (N, K) what each program explains, relatively
    norms = np.linalg.norm(centred, axis=1) * np.linalg.norm(centred[first]) + 1e-12
    cosine = centred @ centred[first] / norms
    return iou[:, k] + novelty * (1.0 - cosine) / 2.0


def tournament(pool: list[int], score: np.ndarray, size: int, rng: np.random.Generator) -> int:
    """Returns the pool member with the highest score among `size` drawn at random."""
    assert pool, "tournament over an empty pool"
    picks = rng.choice(len(pool), size=min(size, len(pool)), replace=False)
    return max((pool[p] for p in picks), key=lambda i: (score[i], -i))
