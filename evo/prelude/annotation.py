"""A sentence's linguistic annotations per model token, and the store the prelude reads them from.

The lowest layer of the linguistic part: trusted code (`evo.parsing`, `evo.linguistic`, the
sandbox's worker) puts annotations here with `provide`; the prelude's helpers read them.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence


@dataclasses.dataclass(frozen=True)
class Annotation:
    """One sentence's annotations, per model token (-1 / "" where a token has no word)."""

    word: tuple[int, ...]      # index of the token's word in the sentence
    pos: tuple[str, ...]       # universal part of speech of its word ("NOUN", "DET", ...)
    dep: tuple[str, ...]       # dependency relation of its word to its head ("nsubj", "det", ...)
    head: tuple[int, ...]      # token index of the first piece of its word's head (-1 for the root)
    chunk: tuple[int, ...]     # noun chunk it is in (-1: none)
    entity: tuple[str, ...]    # named-entity label of its word ("PERSON", "GPE", ...; "": none)
    clause: tuple[int, ...]    # clause it is in (the index of the clause's head word; -1: none)

    def to_json(self) -> dict:
        return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, d: dict) -> "Annotation":
        return cls(**{f.name: tuple(d[f.name]) for f in dataclasses.fields(cls)})


_KNOWN: dict[tuple[str, ...], Annotation] = {}   # tokens -> annotation, in this process


def provide(tokens: Sequence[str], annotation: Annotation) -> None:
    """Hands the prelude the annotation of one sentence (trusted callers only)."""
    _KNOWN[tuple(tokens)] = annotation
