"""Offline symbolic operators: AST mutations, mixes, crossovers and weight fitting, no LLM.

Every child is readable Python that meets the program contract. For each request the
operator draws an edit from `np.random.default_rng(request.seed)`, weighted by the
request's kind; an edit that does not apply, or whose child is invalid, too long or the
same as its parent, is dropped and another drawn, so results depend on the request alone.
"""

import dataclasses
import pathlib

import numpy as np

from evo import program
from evo.errors import UserError
from operators import ast_edits, base, basis, canonical, fit, mixing, mutations
from operators.ast_edits import NotApplicable

# Relative chances of each edit by request kind; the fit edits need an attention set.
MUTATE_WEIGHTS = {
    "change_constant": 2.0, "shift_offset": 2.0, "swap_predicate": 1.5, "flip_comparison": 1.0,
    "sharpen": 0.5, "add_sink": 1.0, "mix_pattern": 1.0, "drop_term": 0.5, "fit_weight": 3.0,
    "fit_basis": 5.0, "fit_scratch": 4.0, "fit_prune": 3.0,
}
CROSSOVER_WEIGHTS = {"mix": 2.0, "splice_condition": 1.5, "swap_helper": 1.0, "fit_mix": 6.0}
FIT_EDITS = ("fit_weight", "fit_mix", "fit_basis", "fit_scratch", "fit_prune")
_POINT_EDITS = {
    "change_constant": mutations.change_constant, "shift_offset": mutations.shift_offset,
    "swap_predicate": mutations.swap_predicate, "flip_comparison": mutations.flip_comparison,
}
_SPLICES = {"splice_condition": mutations.splice_condition, "swap_helper": mutations.swap_helper}


@dataclasses.dataclass(frozen=True)
class Settings:
    max_length: int = 600         # AST nodes a child may have (evo.program.length)
    max_terms: int = 5            # parts a mix may have
    fit_sentences: int = 32       # sentences of the attention set the fit edits score on
    max_tries: int = 8            # edits tried per request before giving up
    min_gain: float = 0.003       # IoU a basis term must add to the fitted mix to be kept
    prune_loss: float = 0.008     # IoU fit_prune may give up, in all, to drop terms
    mutate_weights: dict = dataclasses.field(default_factory=lambda: dict(MUTATE_WEIGHTS))
    crossover_weights: dict = dataclasses.field(default_factory=lambda: dict(CROSSOVER_WEIGHTS))

    def __post_init__(self):
        for table, known in ((self.mutate_weights, MUTATE_WEIGHTS), (self.crossover_weights, CROSSOVER_WEIGHTS)):
            unknown = sorted(set(table) - set(known))
            if unknown:
                raise UserError(f"unknown symbolic edit(s) {unknown}; known: {sorted(known)}")
            if any(not isinstance(v, (int, float)) or v < 0 for v in table.values()):
                raise UserError("symbolic edit weights must be non-negative numbers")
        if not 0 <= self.min_gain < 1:
            raise UserError(f"symbolic setting min_gain must be in [0, 1), got {self.min_gain}")
        for name in ("max_length", "max_terms", "fit_sentences", "max_tries"):
            if getattr(self, name) < 1:
                raise UserError(f"symbolic setting {name} must be at least 1, got {getattr(self, name)}")


class SymbolicOperator(base.Operator):
    """The offline operator: one child per request, deterministic in the request's seed."""

    name = "symbolic"

    def __init__(self, settings: Settings = Settings(), aset_path: pathlib.Path | None = None,
                 causal: bool = True, limits=None):
        self.settings = settings
        self.causal = causal
        self.fitter = fit.Fitter(aset_path, settings.fit_sentences, limits) if aset_path else None
        self.counts: dict[str, int] = {}
        self.failures = 0

    def vary(self, requests: list[base.Request]) -> list[base.Child]:
        """Returns one child per request, in order."""
        return [self._child(r) for r in requests]

    def stats(self) -> dict:
        """Returns how often each edit produced a child, and how many requests got none."""
        return {"children": dict(sorted(self.counts.items())), "failed": self.failures}

    def state_dict(self) -> dict:
        """Returns the counters, for the checkpoint."""
        return {"counts": dict(self.counts), "failures": self.failures}

    def load_state_dict(self, state: dict) -> None:
        """Restores the counters from a checkpoint."""
        self.counts = {str(k): int(v) for k, v in state.get("counts", {}).items()}
        self.failures = int(state.get("failures", 0))

    def _child(self, request: base.Request) -> base.Child:
        """Returns a child from the first edit drawn that applies and yields a valid, new program."""
        rng = np.random.default_rng(request.seed)
        table = dict(self.settings.mutate_weights if request.kind == "mutate" else self.settings.crossover_weights)
        if self.fitter is None:
            table = {k: v for k, v in table.items() if k not in FIT_EDITS}
        ids = tuple(p.id for p in request.parents)
        reasons = []
        for _ in range(self.settings.max_tries):
            names = [k for k, v in table.items() if v > 0]
            if not names:
                break
            weights = np.array([table[k] for k in names], dtype=np.float64)
            edit = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            try:
                source, meta = self._apply(edit, request, rng)
                source = canonical.canonical(source, self.causal)
                self._validate(source, request)
            except NotApplicable as err:
                reasons.append(f"{edit}: {err}")
                table.pop(edit)
                continue
            label = meta.pop("label", edit)
            self.counts[label] = self.counts.get(label, 0) + 1
            return base.Child(source, ids, f"symbolic.{label}", None, meta)
        self.failures += 1
        return base.Child(None, ids, "symbolic", "; ".join(reasons) or "no symbolic edit enabled")

    def _apply(self, edit: str, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        """Returns the child's source and its meta for one named edit."""
        sources = [p.source for p in request.parents]
        if edit in _POINT_EDITS:
            tree = ast_edits.parse(sources[0])
            note = _POINT_EDITS[edit](tree, rng)
            return _without_stale_docstrings(tree, sources), {"edit": note}
        if edit in _SPLICES:
            tree, donor = ast_edits.parse(sources[0]), ast_edits.parse(sources[1])
            if rng.random() < 0.5:
                tree, donor = donor, tree
            note = _SPLICES[edit](tree, donor, rng)
            return _without_stale_docstrings(tree, sources), {"edit": note}
        return getattr(self, f"_{edit}")(request, rng)

    def _sharpen(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        mix = mixing.read(request.parents[0].source, self.causal)
        term = mix.terms[int(rng.integers(len(mix.terms)))]
        factor = float(rng.choice([0.5, 2.0, 3.0]))
        old, term.power = term.power, float(f"{term.power * factor:.3g}")
        label = "sharpen" if factor > 1 else "flatten"
        return canonical.write(mix, self.causal), {"label": label, "edit": f"{term.func} power {old} -> {term.power}"}

    def _add_sink(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        return self._with_pattern(request, rng, "_sink", "add_sink")

    def _mix_pattern(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        pattern = str(rng.choice([p for p in mixing.PATTERNS if p != "_sink"]))
        return self._with_pattern(request, rng, pattern, "mix_pattern")

    def _with_pattern(self, request, rng, pattern: str, label: str) -> tuple[str, dict]:
        mix = mixing.read(request.parents[0].source, self.causal)
        w = float(rng.choice([0.05, 0.1, 0.2, 0.3]))
        mix = mixing.with_pattern(mix, pattern, w, self.causal)
        self._check_terms(mix)
        return canonical.write(mix, self.causal), {"label": label, "edit": f"{w} * {pattern}"}

    def _drop_term(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        mix = mixing.read(request.parents[0].source, self.causal)
        if len(mix.terms) < 2:
            raise NotApplicable("the parent is not a mix of two or more parts")
        gone = mix.terms.pop(int(rng.integers(len(mix.terms))))
        return canonical.write(mix, self.causal), {"edit": f"dropped {gone.func}"}

    def _mix(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        a, b = (mixing.read(p.source, self.causal) for p in request.parents)
        w = float(rng.choice([0.3, 0.5, 0.7]))
        mix = mixing.merge(a, b, w)
        self._check_terms(mix)
        return canonical.write(mix, self.causal), {"edit": f"{w} * first + {1 - w:.1f} * second"}

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
        heads = _heads(request)
        names = basis.names(self.causal)
        found = [self._screen_alone(b, heads) for b in names]
        ranked = sorted(range(len(names)), key=lambda i: (-found[i][0], i))
        pick = ranked[int(rng.integers(min(3, len(ranked))))]
        first, power = names[pick], found[pick][2]
        mix = mixing.with_helper(mixing.Mix({}, [], []), basis.helper_def(first, self.causal), 1.0, power)
        return self._fitted(mix, request, add_patterns=self.settings.max_terms - 1, label="fit_scratch",
                            before=float(request.parents[0].iou[heads].mean()))

    def _fit_prune(self, request: base.Request, rng: np.random.Generator) -> tuple[str, dict]:
        """Drops the terms the head can do without: greedily, refitting after each, within `prune_loss` IoU."""
        heads = _heads(request)
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
        heads = _heads(request)
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
        present = {basis.known(mix.def_named(t.func), self.causal) for t in mix.terms}
        parts = [self.fitter.part(mix, t.func) for t in mix.terms]
        current = self.fitter.mixed(parts, [t.weight for t in mix.terms], [t.power for t in mix.terms])
        best = None
        for name in basis.names(self.causal):
            if name in present:
                continue
            cand = self.fitter.basis_part(name)
            found = self.fitter.screen(current, cand, fit.graded(cand), heads)
            if best is None or found[0] > best[0][0]:
                best = (found, name)
        if best is None or best[0][0] < score + self.settings.min_gain:
            return None
        (_, share, power), name = best
        grown, result = self._fit(mixing.with_helper(mix, basis.helper_def(name, self.causal), share, power), heads)
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

    def _check_terms(self, mix: mixing.Mix) -> None:
        if len(mixing.combined(mix.terms)) > self.settings.max_terms:
            raise NotApplicable(f"the child would mix more than {self.settings.max_terms} parts")

    def _validate(self, source: str, request: base.Request) -> None:
        """Raises NotApplicable unless the child meets the program contract, fits the cap and is new."""
        from evo import sandbox
        problem = sandbox.check(source)
        if problem:
            raise NotApplicable(f"child fails the static check: {problem}")
        size = program.length(source)
        if size > self.settings.max_length:
            raise NotApplicable(f"child would have {size} AST nodes, over the cap of {self.settings.max_length}")
        if program.normalise(source) in {program.normalise(p.source) for p in request.parents}:
            raise NotApplicable("child is the same as a parent")


def _without_stale_docstrings(tree, parents: list[str]) -> str:
    """Returns the edited program's source with the docstrings dropped that no longer describe their code.

    A function (or the module) whose code differs from every parent's function of that name
    loses its docstring, so an account never repeats a claim the edit made untrue.
    """
    import ast
    before = {}
    for source in parents:
        for node in ast_edits.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                before.setdefault(node.name, set()).add(mixing.anonymous(node))
    changed = False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and mixing.anonymous(node) not in before.get(node.name, set()):
            node.body = ast_edits.docstring_free(node.body) or [ast.Pass()]
            changed = True
    if changed:
        tree.body = ast_edits.docstring_free(tree.body)
    return ast_edits.unparse(tree)


def _heads(request: base.Request) -> tuple[int, ...]:
    """Returns the request's target heads, or the first parent's best head when none is given."""
    if request.heads:
        return tuple(int(k) for k in request.heads)
    return (int(np.argmax(request.parents[0].iou)),)
