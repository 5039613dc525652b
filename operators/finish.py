"""Programs leave operators/ finished: in canonical form, with their account in words.

Every operator a run builds (`operators.registry.build`) is wrapped in `Finished`, so the
archive stores what a reader will see: the canonical source (operators.shared.canonical.tidy,
which never changes what a program computes), its length measured on that source (the
length the search selects on is the length export and the report show), and its account
(operators.shared.account). Starting programs go through `finish` the same way. Export,
explain and the report then read those three from the archive and need nothing from here.
"""

from __future__ import annotations

import dataclasses

from operators import base
from operators.shared import account, canonical

UNREAD = "a program that does not parse"  # the account of a source the canonical form cannot read


def finish(source: str, operator: str, causal: bool) -> tuple[str, str]:
    """Returns (the program in canonical form, its account in words).

    A source the canonical form cannot read (hostile or broken code) is kept as it is, for
    the sandbox to judge; its account says so.
    """
    try:
        tidy = canonical.tidy(source, causal)
        return tidy, account.of_program(tidy, operator, causal)
    except Exception:  # noqa: BLE001 -- untrusted text: whatever the AST tools make of it, the sandbox decides
        return source, UNREAD


def starting(programs: list[tuple[str, str, str]], causal: bool) -> list[tuple[str, str, str, str]]:
    """Returns the starting programs (id, source, origin) finished: (id, canonical source, origin, account)."""
    out = []
    for pid, source, origin in programs:
        tidy, words = finish(source, origin, causal)
        out.append((pid, tidy, origin, words))
    return out


class Finished(base.Operator):
    """An operator whose children come out finished (see the module docstring); everything else is the
    wrapped operator's, its attributes included."""

    def __init__(self, inner: base.Operator, causal: bool):
        self.inner = inner
        self.causal = causal
        self.name = inner.name

    def vary(self, requests: list[base.Request]) -> list[base.Child]:
        """Returns the wrapped operator's children, each in canonical form with its account in `meta`."""
        out = []
        for child in self.inner.vary(requests):
            if child.source is not None:
                source, words = finish(child.source, child.operator, self.causal)
                child = dataclasses.replace(child, source=source, meta={**child.meta, "account": words})
            out.append(child)
        return out

    def stats(self) -> dict:
        return self.inner.stats()

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)

    def exhausted(self) -> str | None:
        return self.inner.exhausted()

    def outcomes(self, children: list[base.Child], improved: list[bool]) -> None:
        self.inner.outcomes(children, improved)

    def report_to(self, message) -> None:
        self.inner.report_to(message)

    def known(self, keys) -> None:
        self.inner.known(keys)

    def library(self, terms: tuple) -> None:
        self.inner.library(terms)

    def fits_terms(self) -> bool:
        return self.inner.fits_terms()

    def fit_terms(self, request: base.Request, candidates: list) -> tuple[str, dict]:
        return self.inner.fit_terms(request, candidates)

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
