"""The offline operator's term invention, and the run's library inside every scored fit.

    invent_term   for the head: its wide fit on half the sample's sentences (the even ones), weighing all its
                  table does (the vocabulary, the library, its invented key terms, its own affinities)
                  candidates  <- the grammar (operators.fitting.grammar), each run in the sandbox
                  the four that raise that fit most, added alone at their best weight, are refitted with it,
                  best first, each on top of those kept before it
                  one is kept when the fit with it beats the fit without on the other half's rows by
                  MIN_GAIN (up to KEPT a request)
                  the child: the head's wide fit on the whole sample with the kept terms (or, where that
                  fit lets one go, the kept fit's own terms refitted on the whole sample),
                  the terms in meta["terms"] (the first also in meta["term"]), for the engine's library
                  (evo.search.library)

Every scored fit (fit_wide, fit_scored, fit_sparse, fit_prune) weighs the library's terms beside the
fixed vocabulary; a term is a key term for every query alike (not one per query class, where a wide
fit's table would grow by a dozen columns a term). A mixin of the symbolic operator, beside
operators.fitting.scored_edits (needs `settings`, `fitter`, `causal`, `limits`).
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from operators import base
from operators.fitting import grammar, library_terms, scored
from operators.shared.ast_edits import NotApplicable

MIN_GAIN = 0.001   # held-out IoU a new term must add to its head's fit
LINE = (-2.0, -1.0, -0.5, -0.2, -0.1, 0.1, 0.2, 0.5, 1.0, 2.0)   # weights a candidate is tried at, alone, when screened
SCREENED = 4       # candidates refitted, of those the grammar proposes
KEPT = 3           # terms a request keeps at most, each over the fit with those kept before it
CANDIDATES = 6     # candidates the grammar proposes a request


class TermEdits:
    """The run's library in the fits, and new terms for it."""

    terms: tuple = ()

    def library(self, terms: tuple) -> None:
        """Keeps the run's invented terms for the fits that follow."""
        self.terms = tuple(terms)

    def _library_problem(self, problem: scored.Problem, sample) -> scored.Problem:
        """Returns the problem with the library's terms added as key terms (cached per sample and library)."""
        cache = self.__dict__.setdefault("_with_library", {})
        features = [f for f in (self._values().feature(t) for t in self.terms) if f is not None]
        names = tuple(f.expr for f in features)
        found = cache.get(id(sample))
        if found is None or found[0] != names[:len(found[0])]:
            found = ((), problem)
        done, out = found
        if len(names) > len(done):
            out = out.extended(sample, features[len(done):])
            cache[id(sample)] = (names, out)
        return out

    def _values(self) -> library_terms.Values:
        if getattr(self, "_term_values", None) is None:
            self._term_values = library_terms.Values(self.fitter.aset_path, self.limits)
        return self._term_values

    def _free(self, problem: scored.Problem, fixed: int) -> np.ndarray:
        """Returns the wide fit's allowed terms: every term, less per-class copies of the keys past `fixed`."""
        return problem.unconditioned(list(range(fixed, len(problem.keys))))

    def _invent_term(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        """Invents a term for the head from the grammar, kept only when it helps on held-out rows."""
        sample = self._wide_sample_loaded()
        target = self._target(request.targets(), sample)
        label = self._values().label(request.targets()[0])
        proposed = grammar.candidates(rng, sample.tokens, sample.lengths, target, label, self.terms,
                                      CANDIDATES, self.causal)
        return self._kept(request, proposed, "invent_term")

    def fits_terms(self) -> bool:
        """Returns whether this operator fits terms: it has an attention set, and the run a library."""
        return self.fitter is not None and self.settings.library

    def fit_terms(self, request: base.Request, candidates: list) -> tuple[str, dict]:
        """Returns the head's wide fit with those of `candidates` (evo.terms.Term, written elsewhere: by an
        LLM) that help on held-out rows, and those terms in meta["terms"]; NotApplicable when none does."""
        with self.__dict__.setdefault("_term_lock", threading.Lock()):   # LLM calls finish on several threads
            return self._kept(request, list(candidates), "fit_term")

    def _kept(self, request: base.Request, proposed: list, label: str) -> tuple[str, dict]:
        """Returns the child that uses the proposed terms (up to KEPT) that each add MIN_GAIN IoU on held-out rows
        to the fit with those kept before them."""
        heads = request.targets()
        problem, target = self._head_problem(request)   # measured against the head's own table, all it weighs
        sample, fixed = self._wide_sample, len(self._base_wide().keys)
        sentence = np.repeat(np.arange(len(sample.lengths)), sample.lengths)       # (R,) each row's sentence
        finding, held = sentence % 2 == 0, sentence % 2 == 1
        flat = problem.flat(target)
        find = problem.on_rows(finding)
        fitted = scored.fit_wide(find, target, self.settings.wide_terms, allowed=self._free(problem, fixed))
        score = problem.on_rows(held).fidelity(_attention(problem, fitted), flat)
        kept, columns = [], []
        for term, feature, weight, column in self._screened(problem, find, flat, fitted, proposed, sample):
            if columns and _repeats(np.stack(columns, axis=1), column):
                continue   # numerically a term this request kept already
            bigger = problem.extended(sample, [feature])
            start = [(bigger.index(f.expr), w) for f, w in fitted.terms] + [(len(bigger.keys) - 1, weight)]
            found = scored.fit_wide(bigger.on_rows(finding), target, self.settings.wide_terms, start=start,
                                    allowed=self._free(bigger, fixed))
            gain = bigger.on_rows(held).fidelity(_attention(bigger, found), flat) - score
            if gain >= MIN_GAIN:
                kept.append((dataclasses.replace(term, head=int(heads[0]), gain=round(float(gain), 4)), feature))
                problem, fitted, score = bigger, found, score + gain
                columns.append(column)
            if len(kept) == KEPT:
                break
        name = self._values().label(heads[0])
        if not kept:
            raise NotApplicable(f"none of {len(proposed)} invented terms added {MIN_GAIN} IoU on held-out rows "
                                f"of {name}")
        return self._child_with(request, problem, target, fitted, kept, label, fixed)

    def _child_with(self, request, problem, target, fitted, kept, label, fixed) -> tuple[str, dict]:
        """Returns the head's fit on the whole sample with the kept terms (those the fit keeps), and its meta."""
        start = [(problem.index(f.expr), w) for f, w in fitted.terms]
        result = scored.fit_wide(problem, target, self.settings.wide_terms, start=start,
                                 allowed=self._free(problem, fixed))
        used = lambda fit: {f.expr for f, _ in fit.terms}   # noqa: E731
        if any(f.expr not in used(result) for _, f in kept):   # the whole sample's L1 let one go:
            result = scored.fit(problem, target, len(start), start=start)   # the kept fit's terms, refitted
        kept = [(t, f) for t, f in kept if f.expr in used(result)]
        if not kept:
            raise NotApplicable(f"the invented terms dropped out of {self._values().label(request.targets()[0])}'s "
                                "fit on the whole sample")
        said = "; ".join(f"{t.name}: +{t.gain:.4f}" for t, _ in kept)
        source, meta = self._scored_child(result, request, label, f"{said} IoU on held-out rows")
        meta["term"] = kept[0][0].to_dict()                      # the first, where one term is read
        meta["terms"] = [t.to_dict() for t, _ in kept]
        return source, meta

    def _wide_sample_loaded(self):
        """Returns the wide fits' sample (building the wide problem once)."""
        self._base_wide()
        return self._wide_sample

    def _screened(self, full, find, flat, base_fit, proposed, sample) -> list[tuple]:
        """Returns the SCREENED candidates that raise the base fit most on the finding rows when added alone
        at their best weight (a line search, the other weights held), with their score terms, that weight and
        their values at the finding rows' entries;
        candidates that fail in the sandbox, or that are numerically a term the fit has already (the same
        values up to scale and offset at every entry), are dropped before any fit."""
        idx = [full.index(f.expr) for f, _ in base_fit.terms]
        w = np.array([x for _, x in base_fit.terms])
        base = find.entry_scores(w, idx)
        before = find.fidelity(_softmax(find, base), flat)
        ranked = []
        for term in proposed:
            feature = self._values().candidate(term, sample.tokens)
            if feature is None:
                continue
            column = find.columns(sample, [feature])[:, 0].astype(np.float64)   # (E,) the candidate at every entry
            if _repeats(find.values, column):
                continue   # numerically a term the fit has already (up to scale): not worth a fit
            gains = [(find.fidelity(_softmax(find, base + a * column), flat) - before, a) for a in LINE]
            gain, weight = max(gains)
            ranked.append((gain, term, feature, weight, column))
        ranked.sort(key=lambda t: -t[0])
        return [(t, f, a, c) for g, t, f, a, c in ranked[:SCREENED] if g > 0]


def _repeats(values: np.ndarray, column: np.ndarray) -> bool:
    """Returns whether `column` (E,) is, up to scale and offset, one of the columns of `values` (E, K)."""
    centred = column - column.mean()
    norm = np.linalg.norm(centred)
    if norm < 1e-9:
        return True   # the same score everywhere: no softmax moves
    others = values - values.mean(axis=0)
    corr = (others.T @ centred) / np.maximum(np.linalg.norm(others, axis=0) * norm, 1e-12)   # (K,)
    return bool(np.any(np.abs(corr) > 1 - 1e-6))


def _softmax(problem: scored.Problem, s: np.ndarray) -> np.ndarray:
    """Returns each row's softmax of scores at the entries (E,)."""
    e = np.exp(s - np.maximum.reduceat(s, problem.starts)[problem.segment])
    return e / np.add.reduceat(e, problem.starts)[problem.segment]


def _attention(problem: scored.Problem, fit: scored.Fit) -> np.ndarray:
    """Returns a fit's softmax at the problem's valid entries (E,)."""
    idx = [problem.index(f.expr) for f, _ in fit.terms]
    return problem.softmax(np.array([w for _, w in fit.terms]), idx)
