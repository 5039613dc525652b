"""The offline operator's fitting edits: weights, exponents and basis terms fitted to the target head.

    fit_weight   refit the parent's weights and exponents, adding up to two basis terms
    fit_mix      merge two parents half and half, then refit (a crossover)
    fit_basis    grow the parent by the basis terms that raise its fit most, refitting each time
    fit_scratch  start from one of the head's three best basis terms alone and grow from there
    fit_prune    drop the terms (or score terms) the head can do without, refitting after each
    fit_scored   a row softmax of a few additive score terms fitted to the head (operators.fitting.scored_edits)
    fit_wide     the same with many terms chosen at once: what each kind of query word looks at

Each runs parts of programs in the sandbox (cached, see operators.fitting.fit) and fits in numpy;
every child leaves in canonical form, with two-decimal shares nudged to their best.
"""

import numpy as np

from operators import base
from operators.shared import basis, canonical, mixing
from operators.fitting import fit, scored_edits, scored_text, term_edits
from operators.shared.ast_edits import NotApplicable


class FitEdits(scored_edits.ScoredEdits, term_edits.TermEdits):
    """The fitting edits, mixed into the symbolic operator (needs `settings`, `fitter`, `causal`)."""

    def _fit_weight(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        return self._fitted(mixing.read(request.parents[0].source, self.causal), request, add_patterns=2)

    def _fit_mix(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        a, b = (mixing.read(p.source, self.causal) for p in request.parents)
        return self._fitted(mixing.merge(a, b, 0.5), request, add_patterns=1)

    def _fit_basis(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        mix = mixing.read(request.parents[0].source, self.causal)
        return self._fitted(mix, request, add_patterns=self.settings.max_terms, label="fit_basis")

    def _fit_scratch(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        """Fits a mix of basis patterns alone to the head, starting from one of its three best patterns."""
        heads = request.targets()
        names = basis.names(self.causal, self.settings.linguistic)
        found = [self._screen_alone(b, heads) for b in names]
        ranked = sorted(range(len(names)), key=lambda i: (-found[i][0], i))
        pick = ranked[int(rng.integers(min(3, len(ranked))))]
        first, power = names[pick], found[pick][2]
        mix = mixing.with_pattern(mixing.Mix({}, [], []), first, 1.0, power)
        return self._fitted(mix, request, add_patterns=self.settings.max_terms - 1, label="fit_scratch",
                            before=float(request.parents[0].iou[heads].mean()))

    def _fit_prune(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        """Drops the terms the head can do without: greedily, refitting after each, within `prune_loss` IoU."""
        heads = request.targets()
        source = request.parents[0].source
        problem = self._own_terms(self._scored_problem(), self.fitter.sample, request)
        terms = scored_text.read(source, problem) if "softmax_rows(scores)" in source else None
        if terms:
            return self._prune_scored(problem, terms, heads)
        parent = mixing.read(request.parents[0].source, self.causal)
        if len(parent.terms) < 2:
            raise NotApplicable("the parent has no term to spare")
        mix, result = self._fit(parent, heads)
        floor = result.score - self.settings.prune_loss
        dropped = [t.func for t in parent.terms if t.func not in {u.func for u in mix.terms}]  # refit to nothing
        while len(mix.terms) > 1:
            parts = [self.fitter.part(mix, t.func) for t in mix.terms]
            w = np.array([t.weight for t in mix.terms])
            without = [np.where(np.arange(len(w)) == i, 0.0, w) for i in range(len(w))]  # rows renormalise
            i = int(np.argmax(self.fitter.score_many(parts, without, [t.power for t in mix.terms], heads)))
            cand, found = self._fit(mixing.Mix(mix.imports, mix.defs, mix.terms[:i] + mix.terms[i + 1:]), heads)
            if found.score < floor:
                break
            dropped.append(mix.terms[i].func)
            mix, result = cand, found
        if not dropped:
            raise NotApplicable(f"every term of the parent carries more than {self.settings.prune_loss} IoU")
        mix, score = self._rounded(mix, heads)
        return canonical.write(mix, self.causal), {"heads": list(heads), "fit_iou": round(score, 4),
                                                   "edit": f"dropped {', '.join(dropped)}"}

    def _screen_alone(self, name: str, heads: tuple[int, ...]) -> tuple[float, float, float]:
        part = self.fitter.basis_part(name)
        return self.fitter.screen(None, part, fit.graded(part), heads)

    def _fitted(self, mix: mixing.Mix, request: base.Request, add_patterns: int, label: str | None = None,
                before: float | None = None) -> tuple[str, dict]:
        """Returns the mix with fitted weights and exponents, greedily adding up to `add_patterns` basis terms."""
        heads = request.targets()
        before = self._score(mix, heads) if before is None else before
        mix, result = self._fit(mix, heads)
        for _ in range(add_patterns):
            if len(mixing.combined(mix.terms)) >= self.settings.max_terms:
                break
            grown = self._grow(mix, heads, result.score)
            if grown is None:
                break
            mix, result = grown
        if len(mix.terms) > self.settings.max_terms:
            mix.terms = sorted(mix.terms, key=lambda t: -t.weight)[:self.settings.max_terms]
            mix, result = self._fit(mix, heads)
        mix, score = self._rounded(mix, heads)
        if score <= before + 1e-4:
            raise NotApplicable(f"fitting does not improve on {before:.3f} for heads {list(heads)}")
        meta = {"heads": list(heads), "fit_iou": round(score, 4), "parent_fit_iou": round(before, 4)}
        if label:
            meta["label"] = label
        return canonical.write(mix, self.causal), meta

    def _grow(self, mix: mixing.Mix, heads: tuple[int, ...], score: float):
        """Returns the mix plus the basis term that raises its fit most, refitted, or None below the gain floor."""
        present = {basis.of_term(mix, t.func, self.causal) for t in mix.terms}
        parts = [self.fitter.part(mix, t.func) for t in mix.terms]
        current = self.fitter.mixed(parts, [t.weight for t in mix.terms], [t.power for t in mix.terms])
        best = None
        for name in basis.names(self.causal, self.settings.linguistic):
            if name in present:
                continue
            cand = self.fitter.basis_part(name)
            found = self.fitter.screen(current, cand, fit.graded(cand), heads)
            if best is None or found[0] > best[0][0]:
                best = (found, name)
        if best is None or best[0][0] < score + self.settings.min_gain:
            return None
        (_, share, power), name = best
        grown, result = self._fit(mixing.with_pattern(mix, name, share, power), heads)
        return (grown, result) if result.score >= score + self.settings.min_gain else None

    def _fit(self, mix: mixing.Mix, heads: tuple[int, ...]) -> tuple[mixing.Mix, fit.Result]:
        parts = [self.fitter.part(mix, t.func) for t in mix.terms]
        free = [fit.graded(p) for p in parts]
        result = self.fitter.fit(parts, [t.weight for t in mix.terms], [t.power for t in mix.terms], free, heads)
        terms = [mixing.Term(w, t.func, p) for t, w, p in zip(mix.terms, result.weights, result.powers)]
        kept = [t for t in terms if t.weight >= canonical.MIN_SHARE]
        if kept and len(kept) < len(terms):  # the canonical form drops small terms: refit what is left
            return self._fit(mixing.Mix(mix.imports, mix.defs, kept), heads)
        return mixing.Mix(mix.imports, mix.defs, kept or terms), result

    def _rounded(self, mix: mixing.Mix, heads: tuple[int, ...]) -> tuple[mixing.Mix, float]:
        """Returns the mix with its canonical two-decimal shares, nudged 0.01 at a time while that helps."""
        terms = canonical.shares(mix.terms)
        parts = [self.fitter.part(mix, t.func) for t in terms]
        units = np.array([round(t.weight * 100) for t in terms])
        moves = [(a, b) for a in range(len(units)) for b in range(len(units)) if a != b]
        best = self.fitter.score_many(parts, [units / 100], [t.power for t in terms], heads)[0]
        for _ in range(10):
            cands = [units + np.eye(len(units), dtype=int)[a] - np.eye(len(units), dtype=int)[b] for a, b in moves]
            cands = [c for c in cands if c.min() >= 100 * canonical.MIN_SHARE]
            if not cands:
                break
            scores = self.fitter.score_many(parts, [c / 100 for c in cands], [t.power for t in terms], heads)
            g = int(np.argmax(scores))
            if scores[g] <= best + 1e-6:
                break
            units, best = cands[g], float(scores[g])
        terms = [mixing.Term(u / 100, t.func, t.power) for u, t in zip(units, terms)]
        return mixing.Mix(mix.imports, mix.defs, terms), float(best)

    def _score(self, mix: mixing.Mix, heads: tuple[int, ...]) -> float:
        parts = [self.fitter.part(mix, t.func) for t in mix.terms]
        total = sum(t.weight for t in mix.terms) or 1.0
        return self.fitter.score(parts, [t.weight / total for t in mix.terms], [t.power for t in mix.terms], heads)

