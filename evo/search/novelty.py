"""Novelty before evaluation: a program that attends exactly as one already tried is not a new program.

Text de-duplication (evo.program.key) misses programs that are written differently but
compute the same matrices: a term spelled another way, a weight moved between two equal
terms, a helper renamed. The evaluator fingerprints what each program does (its normalised
matrices on the first few sentences, rounded: evo.evaluate.behaviour) and, given the
fingerprints of the programs already in the archive, does not score one it has seen. Such
a program, and the later of two with one fingerprint in the same generation, is rejected:
it is not added to the archive or the log, does not count against the budget, and its
text is remembered so that it is not evaluated again. What this saves is counted here
(`duplicates`, `seconds`) and checkpointed with the run, so a resumed run rejects the
same programs as an uninterrupted one.
"""

from __future__ import annotations


class Novelty:
    """The programs a run rejected as the same attention as earlier ones."""

    def __init__(self):
        self.rejected: set[str] = set()  # program keys (evo.program.key) rejected
        self.duplicates = 0              # how many were rejected
        self.seconds = 0.0               # evaluation time they took (running, not scoring)

    def seen(self, by_key) -> set[str]:
        """Returns the program keys not to evaluate: those in the archive (`by_key`) and those rejected."""
        return set(by_key) | self.rejected

    def keep(self, children: list, results: list, targets: list, archive) -> tuple[list, list, list]:
        """Returns (children, results, targets) without the rejected ones, counting those."""
        known = set(archive.behaviours)
        kept = ([], [], [])
        for child, res, target in zip(children, results, targets):
            found = getattr(res, "behaviour", None)
            if getattr(res, "duplicate", False) or (found is not None and found in known):
                self.rejected.add(res.key)
                self.duplicates += 1
                self.seconds += float(res.seconds)
                continue
            if found is not None:
                known.add(found)
            for part, item in zip(kept, (child, res, target)):
                part.append(item)
        return kept

    def state(self) -> dict:
        """Returns the checkpoint's `novelty` entry."""
        return {"duplicates": self.duplicates, "seconds": round(self.seconds, 3), "rejected": sorted(self.rejected)}

    def load(self, state: dict) -> None:
        """Restores the checkpoint's `novelty` entry (a run made before it has none)."""
        self.duplicates = int(state.get("duplicates", 0))
        self.seconds = float(state.get("seconds", 0.0))
        self.rejected = set(state.get("rejected", ()))
