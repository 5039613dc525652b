"""The run's term library: invented score terms that join the vocabulary while the search runs.

    a child whose operator invented terms carries them (meta["terms"]; one in meta["term"]) beside the
        program that uses them
    when the generation commits, each such child that ran joins its terms, in the generation's order,
        unless a term of that name or definition is already in, or the library is full
    the operator is told the library before every generation; the checkpoint keeps it, term by term

Terms only change when a generation commits, so a resumed run has the same library, bit for bit,
as one that never stopped.
"""

from __future__ import annotations

from evo import terms
from evo.errors import UserError

SIZE = 96   # terms a library holds at most (each costs every wide fit a column per valid entry)


class Library:
    """The invented terms of one run, in the order they joined."""

    def __init__(self, size: int = SIZE):
        self.size = size
        self.terms: list[terms.Term] = []

    def __len__(self) -> int:
        return len(self.terms)

    def admit(self, children: list, results: list, generation: int) -> list[terms.Term]:
        """Adds the terms carried by children that ran; returns those added."""
        added = []
        for child, result in zip(children, results):
            carried = child.meta.get("terms") or [child.meta.get("term")] if result.ok else []
            for found in carried:
                if not found or len(self.terms) >= self.size:
                    continue
                term = terms.Term.from_dict(dict(found, generation=generation))
                if any(t.name == term.name or t.key == term.key for t in self.terms):
                    continue
                self.terms.append(term)
                added.append(term)
        return added

    def state(self) -> list[dict]:
        """Returns the terms as the checkpoint stores them."""
        return [t.to_dict() for t in self.terms]

    def load(self, state: list | None) -> None:
        """Restores the terms a checkpoint stored (none for a run made before libraries)."""
        if state is not None and not isinstance(state, list):
            raise UserError("checkpoint's library is not a list of terms")
        self.terms = [terms.Term.from_dict(d) for d in state or []]
