"""Which head each request aims at and which parents it gets: tournaments within the head's
selection, crossover partners from its island (sometimes another), favouring novelty."""

from __future__ import annotations

import numpy as np

from evo.search import selection
from operators import base


def requests(n: int, engine) -> list[base.Request]:
    """Returns n requests, each aimed at one head chosen where the search can gain most."""
    s, iou, rng, heads = engine.settings, engine.archive.iou, engine.rng, engine.heads
    weights = selection.head_weights(engine.best, heads.improved_at, heads.since, engine.generation)
    population, seeds = engine.population(), engine.seeds
    visits = _visits(engine.archive)
    out = []
    for _ in range(n):
        k = _head(weights, visits, s.cover_visits, rng)
        first = selection.tournament(heads.selected[k], iou[:, k], s.tournament_size, rng)
        chosen = [first]
        if rng.random() < s.crossover_rate:
            partner = _partner(engine, k, first, population, seeds)
            if partner is not None:
                chosen.append(partner)
        kind = "crossover" if len(chosen) == 2 else "mutate"
        seed = int(rng.integers(0, 2**63 - 1))
        out.append(base.Request(kind, tuple(parent(engine.archive, i) for i in chosen), (k,), seed, int(visits[k])))
        visits[k] += 1
    return out


def _head(weights: np.ndarray, visits: np.ndarray, cover: int, rng: np.random.Generator) -> int:
    """Returns a head drawn by weight, among the heads with fewer than `cover` requests while there are any."""
    short = visits < cover
    w = weights * short if short.any() else weights
    return int(rng.choice(len(w), p=w / w.sum()))


def _visits(archive) -> np.ndarray:
    """Returns, per head, how many programs in the archive were made by requests aimed at it."""
    return np.bincount([r.target[0] for r in archive.records if r.target], minlength=archive.n_heads)


def _partner(engine, k: int, first: int, population: list[list[int]], seeds: set[int]) -> int | None:
    """Returns a crossover partner for `first` on head k, or None when its island has none."""
    s, rng = engine.settings, engine.rng
    island = int(engine.islands[k])
    if len(population) > 1 and rng.random() < s.migration_rate:
        island = int(rng.choice([j for j in range(len(population)) if j != island]))
    pool = sorted((set(population[island]) | seeds) - {first})
    if not pool:
        return None
    score = selection.partner_scores(engine.archive.iou, first, k, s.novelty)
    return selection.tournament(pool, score, s.tournament_size, rng)


def parent(archive, i: int) -> base.Parent:
    """Returns archive row i as a parent."""
    r = archive.records[i]
    return base.Parent(id=r.id, source=r.source, iou=archive.iou[i].copy(), length=r.length)
