"""The operator interface: what the search asks for and what an operator gives back."""

import dataclasses

import numpy as np

KINDS = ("mutate", "crossover")


@dataclasses.dataclass(frozen=True)
class Parent:
    """A program chosen to breed from."""

    id: str
    source: str
    iou: np.ndarray  # (K,) against every head
    length: int


@dataclasses.dataclass(frozen=True)
class Request:
    """One child wanted from one or two parents."""

    kind: str  # "mutate" or "crossover"
    parents: tuple[Parent, ...]  # 1 for mutate, 2 for crossover
    heads: tuple[int, ...]  # target head indices k (the head or island the parents were chosen for)
    seed: int  # the request's own seed: results do not depend on batch order or concurrency
    visits: int | None = None  # programs made for its head before it, plus earlier requests of its batch there (None: not counted)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Request.kind must be one of {KINDS}, got {self.kind!r}")
        wanted = 1 if self.kind == "mutate" else 2
        if len(self.parents) != wanted:
            raise ValueError(f"a {self.kind} request takes {wanted} parent(s), got {len(self.parents)}")

    def targets(self) -> tuple[int, ...]:
        """Returns the target heads, or the first parent's best head when none is given."""
        if self.heads:
            return tuple(int(k) for k in self.heads)
        return (int(np.argmax(self.parents[0].iou)),)


@dataclasses.dataclass(frozen=True)
class Child:
    """One offspring program, or the reason there is none."""

    source: str | None  # None when the operator failed
    parents: tuple[str, ...]
    operator: str  # e.g. "symbolic.shift_offset", "llm.rewrite"
    error: str | None = None
    meta: dict = dataclasses.field(default_factory=dict)  # e.g. LLM usage, latency


class Operator:
    """Turns requests into children, one per request, in the same order.

    The hooks below have defaults; an operator overrides the ones it has something to say in.
    """

    name = "operator"

    def vary(self, requests: list[Request]) -> list[Child]:
        """Returns one child per request, in order."""
        raise NotImplementedError

    def stats(self) -> dict:
        """Returns counters for the progress display."""
        return {}

    def state_dict(self) -> dict:
        """Returns what the operator must carry across a resume, for the checkpoint."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restores what `state_dict` returned."""

    def exhausted(self) -> str | None:
        """Returns why the operator can make nothing more (a spent LLM budget, say), or None."""
        return None

    def outcomes(self, children: list[Child], improved: list[bool]) -> None:
        """Tells the operator which of its evaluated children raised some head's best IoU."""

    def report_to(self, message) -> None:
        """Gives the operator `message(text)`, to show slow work as it finishes (an LLM call, say)."""

    def known(self, keys) -> None:
        """Tells the operator which programs (by `evo.program.key`) were evaluated already: a live view."""

    def library(self, terms: tuple) -> None:
        """Tells the operator the run's invented score terms (evo.terms.Term), before each generation."""

    def fits_terms(self) -> bool:
        """Returns whether `fit_terms` can fit a head with a term written elsewhere (an LLM's)."""
        return False

    def fit_terms(self, request: Request, candidates: list) -> tuple[str, dict]:
        """Returns a program for the request's head that uses the best of `candidates` (evo.terms.Term) and
        its meta (the term in meta["term"]); raises NotApplicable when the operator cannot fit terms or none
        helps."""
        from operators.shared.ast_edits import NotApplicable
        raise NotApplicable(f"the {self.name} operator does not fit score terms")
