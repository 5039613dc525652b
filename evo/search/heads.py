"""Per-head state of a search: when each head last improved, its NSGA-II selection and its front."""

from __future__ import annotations

import numpy as np

from evo.search import selection


class Heads:
    """What the engine tracks per head between generations."""

    def __init__(self, n_heads: int):
        self.improved_at = np.zeros(n_heads, dtype=np.int64)  # generation of each head's last gain
        self.since = np.zeros(n_heads, dtype=np.int64)        # requests aimed at it since then
        self.selected: list[list[int]] = [[] for _ in range(n_heads)]  # NSGA-II survivors (archive rows)
        self.fronts: list[list[int]] = [[] for _ in range(n_heads)]    # first non-dominated front
        self.last_best = np.full(n_heads, -1.0)

    def aimed(self, requests) -> None:
        """Counts one request against each request's target head."""
        for r in requests:
            self.since[r.heads[0]] += 1

    def commit(self, best: np.ndarray, generation: int) -> None:
        """Notes which heads improved in this generation."""
        improved = best > self.last_best + 1e-6
        self.improved_at[improved] = generation
        self.since[improved] = 0
        self.last_best = best

    def select(self, archive, settings, with_cost: bool) -> None:
        """Runs NSGA-II per head over its candidate pool: IoU, length and (when measured) cost."""
        iou, lengths, ok = archive.iou, archive.lengths, archive.ok
        for k in range(archive.n_heads):
            ppl = archive.ppl_column(k) if with_cost else None
            se = archive.ppl_se_column(k) if with_cost else None
            extra = np.flatnonzero(~np.isnan(ppl)) if ppl is not None else None
            pool = selection.candidates(iou[:, k], lengths, ok, settings.pool, extra)
            table = selection.objectives(iou[:, k], lengths, ppl)
            self.selected[k] = selection.nsga2(table, pool, settings.population, se)
            self.fronts[k] = selection.front(table, pool, se)

    def state(self, best: np.ndarray) -> dict:
        """Returns the checkpoint's `heads` entry."""
        return {"improved_at": self.improved_at.tolist(), "since": self.since.tolist(),
                "best": [round(float(x), 6) for x in best]}

    def load(self, state: dict, best: np.ndarray) -> None:
        """Restores the checkpoint's `heads` entry."""
        self.improved_at = np.asarray(state["improved_at"], dtype=np.int64)
        self.since = np.asarray(state["since"], dtype=np.int64)
        self.last_best = best

    def population(self, islands: np.ndarray) -> list[list[int]]:
        """Returns each island's population: the union of its heads' NSGA-II selections."""
        return [sorted({i for k in np.flatnonzero(islands == j) for i in self.selected[k]})
                for j in range(int(islands.max()) + 1)]
