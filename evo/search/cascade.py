"""The downstream cascade: costs for programs on or near a head's front, measured in the background.

The search starts a cascade after each generation's checkpoint; it runs in a thread while
the next generation is varied and evaluated, and is joined at one fixed point (before that
generation's programs are added), so the costs a selection sees never depend on timing or
worker count. Which pairs it measures is a pure function of the archive, so a resumed run
starts exactly the cascade an uninterrupted one would have.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from evo.search import selection


class Downstream(Protocol):
    def costs(self, items: list[tuple[str, str, int]]) -> list[float | tuple[float, float] | None]:
        """Returns per (program id, source, head k) its cost, or (cost, standard error); None if it failed."""


def items(archive, margin: float, limit: int | None = None) -> list[tuple[int, int]]:
    """Returns the (program, head) pairs on or near a head's front whose cost is not yet known.

    With `limit`, at most that many: every head's highest-IoU unmeasured pair first, then
    every head's second, and so on, so one generation's measurements spread over the heads.
    """
    iou, lengths, ok = archive.iou, archive.lengths, archive.ok
    ranked = []
    for k in range(archive.n_heads):
        best = iou[ok, k].max() if ok.any() else 0.0
        near = set(i for i in selection.front_2d(iou[:, k], lengths, ok) if iou[i, k] >= best - margin)
        near.update(int(i) for i in np.flatnonzero(ok)[np.argsort(-iou[ok, k], kind="stable")[:3]])
        todo = sorted((i for i in near if (i, k) not in archive.ppl), key=lambda i: (-iou[i, k], i))
        ranked += [(rank, k, i) for rank, i in enumerate(todo)]
    chosen = sorted(ranked)[:limit] if limit is not None else ranked
    return sorted((i, k) for _, k, i in chosen)


class Cascade:
    """At most one background measurement of downstream costs at a time (none without a downstream measure)."""

    def __init__(self, downstream: Downstream | None):
        self.downstream = downstream
        self._pending: tuple[list, threading.Thread, dict] | None = None

    @property
    def running(self) -> bool:
        return self._pending is not None

    def start(self, archive, margin: float, limit: int | None = None) -> None:
        """Starts measuring the pairs `items(archive, margin, limit)` in a background thread."""
        if self._pending is not None or self.downstream is None:
            return
        pairs = items(archive, margin, limit)
        if not pairs:
            return
        payload = [(archive.records[i].id, archive.records[i].source, k) for i, k in pairs]
        box: dict = {}

        def measure() -> None:
            try:
                box["costs"] = self.downstream.costs(payload)
            except BaseException as err:  # handed to the main thread by finish()
                box["error"] = err

        thread = threading.Thread(target=measure, name="headcode-downstream", daemon=True)
        thread.start()
        self._pending = (pairs, thread, box)

    def finish(self, archive) -> None:
        """Waits for the measurement in flight, if any, and records its costs in the archive."""
        if self._pending is None:
            return
        pairs, thread, box = self._pending
        thread.join()
        self._pending = None
        if "error" in box:
            raise box["error"]
        costs = box["costs"]
        assert len(costs) == len(pairs), "downstream returned a different number of costs"
        for pair, cost in zip(pairs, costs):
            if isinstance(cost, tuple):
                cost, se = cost
                archive.ppl_se[pair] = float(se)
            archive.ppl[pair] = None if cost is None else float(cost)
