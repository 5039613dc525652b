"""A head's picks from its front: the readable program, the simplest near the best, the best fit.

    readable   the highest-IoU program of at most `readable_nodes` AST nodes (default READABLE_NODES):
               what a reader holds in their head, and what accounts and families describe
    simplest   the shortest program within SIMPLEST_MARGIN IoU of the best
    best       the highest IoU, whatever its length: the best fit, shown beside the readable one
"""

from __future__ import annotations

import dataclasses

READABLE_NODES = 60     # AST nodes a readable pick may have (evo.program.length)
SIMPLEST_MARGIN = 0.01  # the simplest pick may give up this much IoU against the best


@dataclasses.dataclass(frozen=True)
class Entry:
    """One program on one head's front."""

    program: str
    iou: float
    length: int
    ppl_increase: float | None
    account: str = ""  # what the program is, in words (operators.shared.account)


def best_of(front: list[Entry]) -> Entry:
    """Returns the highest-IoU entry (the shortest among ties)."""
    return max(front, key=lambda e: (e.iou, -e.length))


def simplest_of(front: list[Entry]) -> Entry:
    """Returns the shortest entry within SIMPLEST_MARGIN of the best IoU (the better among ties)."""
    floor = best_of(front).iou - SIMPLEST_MARGIN - 1e-9
    return min((e for e in front if e.iou >= floor), key=lambda e: (e.length, -e.iou))


def readable_of(front: list[Entry], nodes: int = READABLE_NODES) -> Entry:
    """Returns the highest-IoU entry of at most `nodes` AST nodes (the shortest among ties); the
    shortest entry when none is that short."""
    within = [e for e in front if e.length <= nodes]
    if not within:
        return min(front, key=lambda e: (e.length, -e.iou))
    return max(within, key=lambda e: (e.iou, -e.length))


class Picks:
    """Per-head picks over `self.heads` and `self.fronts` (shared by export and evo.results)."""

    readable_nodes: int = READABLE_NODES

    def best(self, k: int) -> Entry:
        """Returns head k's highest-IoU front entry (the shortest among ties)."""
        return best_of(self.fronts[k])

    def simplest(self, k: int) -> Entry:
        """Returns head k's shortest front entry within SIMPLEST_MARGIN of the best IoU."""
        return simplest_of(self.fronts[k])

    def readable(self, k: int) -> Entry:
        """Returns head k's readable pick: its best program of at most `readable_nodes` AST nodes."""
        return readable_of(self.fronts[k], self.readable_nodes)

    def label(self, k: int) -> str:
        """Returns head k's name, `L.H`."""
        layer, head = self.heads[k]
        return f"L{layer}.H{head}"
