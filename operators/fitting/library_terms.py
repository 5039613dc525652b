"""The run's invented terms (evo.terms) as score terms a fit can weigh beside the fixed vocabulary.

    _nearest_capital(tokens)          on the nearest earlier capitalised token   (its docstring)

A term's values are computed once per attention set, in the sandbox, on every sentence of the set, and
cached beside it (`AttentionSet.derived`): every worker and every fit sample reads the same array. A
term that fails there is left out of the fits (it never joined a library: a term joins only with a
program that ran, but a set the run was not made on may still trip it).
"""

from __future__ import annotations

import pathlib

import numpy as np

from evo import terms as terms_mod
from operators.shared.score_terms import Feature


class Values:
    """Invented terms' values on one attention set, by sentence, computed in the sandbox and cached."""

    def __init__(self, aset_path: pathlib.Path, limits=None):
        self.aset_path = pathlib.Path(aset_path)
        self.limits = limits
        self._aset = None
        self._found: dict[str, dict[tuple, np.ndarray] | str] = {}   # term key -> sentence -> (n, n), or why not

    def feature(self, term: terms_mod.Term) -> Feature | None:
        """Returns the term as a score term (its docstring its meaning), or None when it cannot run here."""
        table = self._table(term)
        return None if isinstance(table, str) else _feature(term, table)

    def candidate(self, term: terms_mod.Term, sentences: list[list[str]]) -> Feature | None:
        """Returns a candidate term as a score term on these sentences (run in the sandbox now, not cached:
        most candidates never join), or None when it fails there."""
        found = terms_mod.values(term, [list(t) for t in sentences], self.limits)
        if isinstance(found, str):
            return None
        return _feature(term, {tuple(t): m for t, m in zip(sentences, found)})

    def label(self, k: int) -> str:
        """Returns head k's name, "L3.H1"."""
        aset = self._load()
        return f"L{k // aset.n_heads}.H{k % aset.n_heads}"

    def _load(self):
        from evo import attention_set
        if self._aset is None:
            self._aset = attention_set.AttentionSet.load(self.aset_path)
        return self._aset

    def failure(self, term: terms_mod.Term) -> str | None:
        """Returns why the term cannot run on this set, or None."""
        table = self._table(term)
        return table if isinstance(table, str) else None

    def _table(self, term: terms_mod.Term) -> dict | str:
        if term.key not in self._found:
            self._found[term.key] = self._compute(term)
        return self._found[term.key]

    def _compute(self, term: terms_mod.Term) -> dict | str:
        """Returns the term's (n, n) values by sentence (tokens as a tuple), from the set's cache or the sandbox."""
        aset = self._load()
        sentences = [list(t) for t in aset.tokens]
        lengths = [len(t) for t in sentences]
        failed: list[str] = []

        def fill(out: np.ndarray) -> None:
            found = terms_mod.values(term, sentences, self.limits)
            if isinstance(found, str):
                failed.append(found)
                raise _Failed(found)
            out[...] = terms_mod.flat(found)

        try:
            flat = aset.derived(f"term-{term.key}", (sum(n * n for n in lengths),), fill)
        except _Failed:
            return failed[0]
        return {tuple(t): m for t, m in zip(sentences, terms_mod.unflat(flat, lengths))}


class _Failed(Exception):
    """A term failed in the sandbox while its cache was being built."""


def _feature(term: terms_mod.Term, table: dict) -> Feature:
    """Returns the term as a score term: its call, its docstring as the meaning, its values by sentence."""
    return Feature(f"{term.name}(tokens)", term.doc[:1].lower() + term.doc[1:].rstrip("."), False,
                   lambda t: _lookup(table, t), definition=term.source)


def _lookup(table: dict, tokens: list[str]) -> np.ndarray:
    """Returns the cached values for a sentence of the set (a term is only weighed on the set's sentences)."""
    found = table.get(tuple(tokens))
    if found is None:
        raise KeyError("an invented term's values are cached for its attention set's sentences only")
    return found
